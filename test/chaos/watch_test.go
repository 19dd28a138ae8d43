package chaos

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// watch polls every batch's status while the harness runs and records
// every counter that went backwards: a user (and a dashboard) reading the
// status must never see a device un-succeed.
type watch struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	last   map[string]map[string]int64 // batch → counter → last value seen
	events []string
	polls  int
}

func startWatch(ctx context.Context, c client.Client) *watch {
	return startWatchOf(ctx, c, []string{ns})
}

// startWatchOf watches the batches of every namespace in namespaces.
func startWatchOf(ctx context.Context, c client.Client, namespaces []string) *watch {
	ctx, cancel := context.WithCancel(ctx)
	w := &watch{cancel: cancel, done: make(chan struct{}), last: map[string]map[string]int64{}}
	go func() {
		defer close(w.done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			for _, n := range namespaces {
				var list otav1.UpgradeBatchList
				if err := c.List(ctx, &list, client.InNamespace(n)); err == nil {
					w.observe(list.Items, time.Now())
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return w
}

func (w *watch) observe(batches []otav1.UpgradeBatch, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.polls++
	for _, ub := range batches {
		seen := counters(ub.Status)
		key := ub.Namespace + "/" + ub.Name
		prev := w.last[key]
		for _, name := range slices.Sorted(maps.Keys(prev)) {
			if seen[name] < prev[name] {
				w.events = append(w.events, fmt.Sprintf("%s batch %s: %s went backwards, %d -> %d",
					now.Format("15:04:05.000"), key, name, prev[name], seen[name]))
			}
		}
		w.last[key] = seen
	}
}

// counters are the status counters that only ever grow: tasks selected and
// tasks in a final state, in total and by failure reason.
func counters(st otav1.UpgradeBatchStatus) map[string]int64 {
	out := map[string]int64{
		"total": st.Counts.Total, "succeeded": st.Counts.Succeeded, "failed": st.Counts.Failed,
		"timedOut": st.Counts.TimedOut, "canceled": st.Counts.Canceled,
	}
	for _, r := range st.FailureReasons {
		out["failureReasons["+r.Reason+"]"] += r.Count
	}
	return out
}

// stop ends the polling and returns the backward steps seen and how many
// polls were made.
func (w *watch) stop() ([]string, int) {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.events...), w.polls
}
