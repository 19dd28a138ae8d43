package dashboard

import (
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/rollout"
)

func testIndex() *batchIndex {
	ix := &batchIndex{waves: map[int32]*waveCounts{}}
	for i := range 10 {
		st := otav1.TaskSucceeded
		if i%3 == 0 {
			st = otav1.TaskFailed
		}
		t := otav1.DeviceTask{Device: fmt.Sprintf("Plug-%02d", i), State: st, Wave: int32(1 + i/5)}
		ix.tasks = append(ix.tasks, t)
		ix.count(t)
	}
	return ix
}

func names(ts []otav1.DeviceTask) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Device)
	}
	return out
}

func TestIndexPage(t *testing.T) {
	ix := testIndex()
	for _, tc := range []struct {
		name    string
		q       query
		want    []string
		matched int
	}{
		{"first page", query{limit: 3}, []string{"Plug-00", "Plug-01", "Plug-02"}, 10},
		{"last page is short", query{offset: 8, limit: 3}, []string{"Plug-08", "Plug-09"}, 10},
		{"past the end", query{offset: 20, limit: 3}, nil, 10},
		{"state", query{state: otav1.TaskFailed, limit: 10}, []string{"Plug-00", "Plug-03", "Plug-06", "Plug-09"}, 4},
		{"search ignores case", query{search: "plug-0", limit: 2}, []string{"Plug-00", "Plug-01"}, 10},
		{"search and state", query{search: "9", state: otav1.TaskFailed, limit: 10}, []string{"Plug-09"}, 1},
		{"no match", query{search: "lamp", limit: 10}, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, matched := ix.page(tc.q)
			if !slices.Equal(names(rows), tc.want) || matched != tc.matched {
				t.Fatalf("got %v (%d matched), want %v (%d)", names(rows), matched, tc.want, tc.matched)
			}
		})
	}
}

func TestIndexCountsWaves(t *testing.T) {
	ix := testIndex()
	want := map[int32]waveCounts{1: {Total: 5, Succeeded: 3, Failed: 2}, 2: {Total: 5, Succeeded: 3, Failed: 2}}
	for w, c := range want {
		if got := *ix.waves[w]; got != c {
			t.Errorf("wave %d: %+v, want %+v", w, got, c)
		}
	}
}

func TestContainsFold(t *testing.T) {
	for _, tc := range []struct {
		s, sub string
		want   bool
	}{
		{"dev-000123", "0001", true}, {"SmartPlug-7", "plug-7", true}, {"abc", "abcd", false},
		{"abc", "", true}, {"ABC", "b", true}, {"abc", "x", false},
	} {
		if got := containsFold(tc.s, tc.sub); got != tc.want {
			t.Errorf("containsFold(%q, %q) = %t", tc.s, tc.sub, got)
		}
	}
}

func TestGuardRefusesForeignHostsAndCrossSitePosts(t *testing.T) {
	h := guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	for _, tc := range []struct {
		name, method, host, origin string
		header                     bool
		want                       int
	}{
		{"page", "GET", "127.0.0.1:3100", "", false, http.StatusNoContent},
		{"localhost", "GET", "localhost:3100", "", false, http.StatusNoContent},
		{"DNS rebinding", "GET", "evil.example:3100", "", false, http.StatusForbidden},
		{"action", "POST", "127.0.0.1:3100", "http://127.0.0.1:3100", true, http.StatusNoContent},
		{"form post from another site", "POST", "127.0.0.1:3100", "https://evil.example", false, http.StatusForbidden},
		{"fetch from another origin", "POST", "127.0.0.1:3100", "http://localhost:8080", true, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/api/batches/b/pause", nil)
			r.Host = tc.host
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			if tc.header {
				r.Header.Set(actionHeader, "1")
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d", w.Code, tc.want)
			}
		})
	}
}

// A wave's size is the one the engine cuts (rollout.WaveOf), never fewer
// devices than the wave pushed.
func TestWaveTargetsFollowTheEngine(t *testing.T) {
	spec := []otav1.Wave{{Percent: 10}, {Percent: 50}, {Percent: 100}}
	for _, n := range []int{1, 7, 11, 99, 1001} {
		engine := map[int32]int64{}
		for i := range n {
			engine[rollout.WaveOf(i, n, spec)]++
		}
		ub := &otav1.UpgradeBatch{Spec: otav1.UpgradeBatchSpec{Waves: spec}}
		ub.Status.Counts.Total = int64(n)
		for _, w := range waves(ub, &batchIndex{}) {
			if w.Target != engine[w.Number] {
				t.Errorf("%d devices, wave %d: the dashboard says %d, the engine pushes %d", n, w.Number, w.Target, engine[w.Number])
			}
		}
	}
}

// At most maxIndexes indexes stay, the least recently asked for go first.
func TestIndexesEvictLeastRecent(t *testing.T) {
	x := newIndexes(nil)
	for i := range maxIndexes + 2 {
		b := fmt.Sprintf("b%d", i)
		x.gets++
		x.used[b], x.m[b] = x.gets, &batchIndex{}
		if i == 3 {
			x.gets++
			x.used["b0"] = x.gets // b0 asked for again: kept
		}
		x.evict()
	}
	if len(x.m) != maxIndexes || x.m["b0"] == nil || x.m["b1"] != nil || x.m["b2"] != nil {
		t.Errorf("kept %v", slices.Sorted(maps.Keys(x.m)))
	}
}
