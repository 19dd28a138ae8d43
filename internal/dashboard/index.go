package dashboard

import (
	"slices"
	"strings"
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// batchIndex is one batch's device tasks, sorted by device name, read from
// its UpgradeSlices (already parsed by the API's slice-text decoder when
// the cache decoded them). It is rebuilt only when the batch's slice
// generation moved, so paging and searching a 100,000-device batch costs a
// scan of memory, not a list from the API server.
type batchIndex struct {
	gen     uint64
	tasks   []otav1.DeviceTask
	invalid int // lines of the slices that did not read
	waves   map[int32]*waveCounts
}

// waveCounts counts one wave's tasks.
type waveCounts struct {
	Total     int64 `json:"total"`
	Succeeded int64 `json:"succeeded"`
	Failed    int64 `json:"failed"` // FAILED, TIMED_OUT and CANCELED
	Active    int64 `json:"active"`
}

// indexes holds the indexes of the batches pages asked for last, at most
// maxIndexes: an index holds every task of its batch, a million for a
// large one, and a dashboard left open for weeks visits many batches.
type indexes struct {
	w    *watcher
	mu   sync.Mutex
	m    map[string]*batchIndex
	used map[string]uint64 // batch → when it was last asked for, in gets
	gets uint64
}

const maxIndexes = 4

func newIndexes(w *watcher) *indexes {
	return &indexes{w: w, m: map[string]*batchIndex{}, used: map[string]uint64{}}
}

// get returns the batch's index, rebuilding it if a slice changed since
// it was built. Indexes are immutable once built, so callers read them
// without a lock.
func (x *indexes) get(ns, batch string) (*batchIndex, error) {
	gen := x.w.sliceGen(batch)
	x.mu.Lock()
	defer x.mu.Unlock()
	x.gets++
	x.used[batch] = x.gets
	if ix, ok := x.m[batch]; ok && ix.gen == gen {
		return ix, nil
	}
	// gen is read before the list: a change during the build moves the
	// generation again, so the next request rebuilds.
	ix, err := x.build(ns, batch, gen)
	if err != nil {
		return nil, err
	}
	x.m[batch] = ix
	x.evict()
	return ix, nil
}

// evict drops the least recently asked for indexes beyond maxIndexes.
func (x *indexes) evict() {
	for len(x.m) > maxIndexes {
		oldest := ""
		for b := range x.m {
			if oldest == "" || x.used[b] < x.used[oldest] {
				oldest = b
			}
		}
		delete(x.m, oldest)
		delete(x.used, oldest)
	}
}

func (x *indexes) build(ns, batch string, gen uint64) (*batchIndex, error) {
	list := &otav1.UpgradeSliceList{}
	if err := x.w.list(list, client.InNamespace(ns), client.MatchingLabels{
		otav1.LabelCampaign: batch, otav1.LabelKind: string(otav1.KindUpgradeBatch),
	}); err != nil {
		return nil, err
	}
	return newIndex(gen, list.Items), nil
}

// newIndex indexes the tasks of a batch's slices.
func newIndex(gen uint64, items []otav1.UpgradeSlice) *batchIndex {
	n := 0
	for i := range items {
		n += len(items[i].Tasks)
	}
	ix := &batchIndex{gen: gen, tasks: make([]otav1.DeviceTask, 0, n), waves: map[int32]*waveCounts{}}
	for i := range items {
		for _, t := range items[i].Tasks {
			if t.Invalid != "" {
				ix.invalid++
				continue
			}
			ix.tasks = append(ix.tasks, t)
			ix.count(t)
		}
	}
	slices.SortFunc(ix.tasks, func(a, b otav1.DeviceTask) int { return strings.Compare(a.Device, b.Device) })
	return ix
}

func (ix *batchIndex) count(t otav1.DeviceTask) {
	wc := ix.waves[t.Wave]
	if wc == nil {
		wc = &waveCounts{}
		ix.waves[t.Wave] = wc
	}
	wc.Total++
	switch {
	case t.State == otav1.TaskSucceeded:
		wc.Succeeded++
	case t.State.Active():
		wc.Active++
	default:
		wc.Failed++
	}
}

// query selects tasks for the device table.
type query struct {
	search string // substring of the device name, case-insensitive
	state  otav1.TaskState
	offset int
	limit  int
}

// page returns the matching tasks from q.offset, at most q.limit of them,
// and how many match in all. Only the page is copied out.
func (ix *batchIndex) page(q query) ([]otav1.DeviceTask, int) {
	search := strings.ToLower(q.search)
	var out []otav1.DeviceTask
	matched := 0
	for i := range ix.tasks {
		t := &ix.tasks[i]
		if q.state != "" && t.State != q.state {
			continue
		}
		if search != "" && !containsFold(t.Device, search) {
			continue
		}
		if matched >= q.offset && len(out) < q.limit {
			out = append(out, *t)
		}
		matched++
	}
	return out, matched
}

// containsFold reports whether s contains the lower-case sub, ignoring
// ASCII case, without allocating: device names are ASCII by the API's
// pattern, and lowering 100,000 names per keystroke would be garbage.
func containsFold(s, sub string) bool {
	if strings.Contains(s, sub) {
		return true
	}
	for i := 0; i+len(sub) <= len(s); i++ {
		j := 0
		for ; j < len(sub); j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != sub[j] {
				break
			}
		}
		if j == len(sub) {
			return true
		}
	}
	return false
}
