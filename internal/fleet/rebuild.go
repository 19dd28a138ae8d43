package fleet

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/rollout"
)

// listPage is the page size for the start-up lists: big enough to be fast,
// small enough that one page is a few MiB.
const listPage = 500

// rebuild loads products, the inventory and every campaign's tasks. The
// device locks are derived from the active tasks, which are the record of
// truth; a DeviceSlice whose lock mirror disagrees is rewritten.
func (e *Engine) rebuild(ctx context.Context) error {
	var products otav1.ProductList
	if err := e.reader.List(ctx, &products); err != nil {
		return fmt.Errorf("listing Products: %w", err)
	}
	// The Product reconciler's decisions first; then, oldest first, the
	// Products it has not decided on yet (a status lost in a restore):
	// their slices must load now, or new slices would overwrite them.
	slices.SortStableFunc(products.Items, func(a, b otav1.Product) int {
		if oa, ob := ownsKey(&a), ownsKey(&b); oa != ob {
			return map[bool]int{true: -1, false: 1}[oa]
		}
		return a.CreationTimestamp.Compare(b.CreationTimestamp.Time)
	})
	for i := range products.Items {
		if p := &products.Items[i]; p.DeletionTimestamp.IsZero() && !refused(p) && e.Owns(p.Spec.ProductKey) {
			e.SyncProduct(p)
		}
	}
	e.mu.Lock()
	defer e.unlock()
	mirrors := map[*device]otav1.DeviceLock{}
	err := listAll(ctx, e.reader, &otav1.DeviceSliceList{}, e.scope(), func(l *otav1.DeviceSliceList) {
		for i := range l.Items {
			e.loadDeviceSlice(&l.Items[i], mirrors)
		}
	})
	if err != nil {
		return fmt.Errorf("listing DeviceSlices: %w", err)
	}
	err = listAll(ctx, e.reader, &otav1.UpgradeSliceList{}, e.scope(), func(l *otav1.UpgradeSliceList) {
		for i := range l.Items {
			e.loadUpgradeSlice(&l.Items[i])
		}
	})
	if err != nil {
		return fmt.Errorf("listing UpgradeSlices: %w", err)
	}
	for d, lock := range mirrors {
		if d.task == nil || d.task.c.ref() != lock.Campaign || d.task.state != lock.State {
			e.markDevice(d, false)
		}
	}
	for _, c := range e.campaigns {
		c.currentWave = 0
		for _, t := range c.tasks {
			if t.attempt > 0 {
				c.currentWave = max(c.currentWave, t.wave)
			}
		}
		inSelectionOrder(c)
	}
	return nil
}

// inSelectionOrder puts a rebuilt campaign's slices and push queue back in
// the order of its selection: the API server lists slices by name
// (b-0, b-1, b-10, b-11, ..., b-2), and a queue out of wave order stops the
// push loop at the first task of a later wave, so that the current wave's
// other tasks were never pushed (found by the chaos harness).
func inSelectionOrder(c *campaign) {
	bySlice := func(a, b *upgradeSlice) int { return sliceIndex(a.name) - sliceIndex(b.name) }
	slices.SortStableFunc(c.slices, bySlice)
	slices.SortStableFunc(c.queue, func(a, b *task) int {
		if a.wave != b.wave {
			return int(a.wave - b.wave)
		}
		return bySlice(a.slice, b.slice)
	})
}

// invalidRecord counts and logs a slice line that does not read (someone
// edited the slice by hand); the rest of the slice loads as usual.
func (e *Engine) invalidRecord(kind string, s client.Object, why string) {
	e.stats.InvalidRecords++
	e.log.Error(nil, "Skipping an unreadable line of a slice", "kind", kind,
		"slice", client.ObjectKeyFromObject(s), "error", why)
}

// ownsKey and refused read what the Product reconciler decided about p's
// productKey: it alone decides (claims, then the oldest Product), and the
// engine follows.
func ownsKey(p *otav1.Product) bool {
	return apimeta.IsStatusConditionTrue(p.Status.Conditions, otav1.ConditionReady)
}

func refused(p *otav1.Product) bool {
	c := apimeta.FindStatusCondition(p.Status.Conditions, otav1.ConditionReady)
	return c != nil && c.Reason == otav1.ReasonDuplicateProduct
}

// scope selects the slices of the engine's product, when it has one: a
// takeover of one product reads that product's slices, not the fleet's.
func (e *Engine) scope() client.ListOption {
	if e.opts.ProductKey == "" {
		return client.MatchingLabels{}
	}
	return client.MatchingLabels{otav1.LabelProductKey: e.opts.ProductKey}
}

// listAll pages through a list.
func listAll[L client.ObjectList](ctx context.Context, r client.Reader, list L, scope client.ListOption, each func(L)) error {
	opts := []client.ListOption{scope, client.Limit(listPage)}
	for {
		if err := r.List(ctx, list, opts...); err != nil {
			return err
		}
		each(list)
		next := list.GetContinue()
		if next == "" {
			return nil
		}
		opts = []client.ListOption{scope, client.Limit(listPage), client.Continue(next)}
	}
}

func (e *Engine) loadDeviceSlice(s *otav1.DeviceSlice, mirrors map[*device]otav1.DeviceLock) {
	pr := e.products[s.ProductKey]
	if pr == nil || pr.namespace != s.Namespace {
		return
	}
	ds := &deviceSlice{name: s.Name, product: pr, created: true}
	pr.nextSlice = max(pr.nextSlice, sliceIndex(s.Name)+1)
	for _, rec := range s.Devices {
		if rec.Invalid != "" {
			e.invalidRecord("DeviceSlice", s, rec.Invalid)
			continue
		}
		if pr.devices[rec.Name] != nil {
			ds.dirty = true // a duplicate: keep the first, rewrite this slice without it
			continue
		}
		d := &device{name: rec.Name, slice: ds, modules: rec.Modules, lastSeen: rec.LastSeen}
		pr.devices[rec.Name] = d
		for _, mv := range rec.Modules {
			pr.versions.add(mv.Module, mv.Version, 1)
		}
		ds.devices = append(ds.devices, d)
		if rec.Lock != nil {
			mirrors[d] = *rec.Lock
		}
	}
	pr.slices = append(pr.slices, ds)
}

func (e *Engine) loadUpgradeSlice(s *otav1.UpgradeSlice) {
	pr := e.products[s.ProductKey]
	if pr == nil {
		return
	}
	key := keyOf(s.Namespace, s.Campaign)
	c := e.campaigns[key]
	if c == nil {
		c = &campaign{key: key, tasks: map[string]*task{}, product: pr}
		c.spec.Ref, c.spec.Namespace, c.spec.ProductKey, c.spec.Module = s.Campaign, s.Namespace, s.ProductKey, s.Module
		pr.campaigns[c] = struct{}{}
		e.campaigns[key] = c
	}
	us := &upgradeSlice{name: s.Name, campaign: c, created: true}
	c.nextSlice = max(c.nextSlice, sliceIndex(s.Name)+1)
	c.slices = append(c.slices, us)
	for _, rec := range s.Tasks {
		if rec.Invalid != "" {
			e.invalidRecord("UpgradeSlice", s, rec.Invalid)
			continue
		}
		if c.tasks[rec.Device] != nil {
			us.dirty = true
			continue
		}
		d := pr.devices[rec.Device]
		switch {
		case d == nil && rec.State.Active():
			// Its task was written, its DeviceSlice not (the last leader
			// stopped between the two): the device is real, and its next
			// report must reach this task, so it joins the inventory.
			d = e.register(pr, rec.Device)
		case d == nil:
			d = &device{name: rec.Device} // a device the campaign failed as unknown
		}
		t := &task{dev: d, c: c, slice: us, state: rec.State, step: rec.Step, attempt: rec.Attempt,
			wave: rec.Wave, from: rec.FromVersion, reason: rec.Reason, message: rec.Message,
			updated: rec.Updated, started: rec.Started * 1000, retryAt: rec.RetryAt * 1000, notified: rec.Updated * 1000,
			pushes: rec.Pushes, soakStart: rec.SoakStart * 1000,
			reverted: rec.State == otav1.TaskFailed && rec.Reason == otav1.FailureReverted}
		if t.state == otav1.TaskNotified {
			t.unsure, t.notified = true, e.now().UnixMilli()
		}
		c.tasks[rec.Device] = t
		us.tasks = append(us.tasks, t)
		c.count("", false, t.state, t.reverted)
		if t.state.Unsuccessful() {
			c.addReason(t.reason, t.message, 1)
		}
		if t.state.Active() {
			e.lockOnLoad(d, t)
		}
	}
}

// lockOnLoad gives a device to an active task found at start-up. Two active
// tasks for one device can only come from a crash between two writes; the
// one that already reached the device wins, the other is canceled.
func (e *Engine) lockOnLoad(d *device, t *task) {
	if h := d.task; h != nil {
		loser := t
		if t.state.Started() && !h.state.Started() {
			loser, d.task = h, t
		}
		loser.reason, loser.message = rollout.ReasonOverwritten, "the device was held by another campaign at start-up"
		e.setState(loser, otav1.TaskCanceled, e.now())
		return
	}
	d.task = t
	switch {
	case t.state != otav1.TaskQueued || t.retryAt != 0:
	case t.attempt > 0 || t.pushes > 0:
		t.c.enqueueAgain(t) // pushed before: not in selection order
	default:
		t.c.enqueue(t)
	}
}

func sliceIndex(name string) int {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return 0
	}
	n, err := strconv.Atoi(name[i+1:])
	if err != nil {
		return 0
	}
	return n
}
