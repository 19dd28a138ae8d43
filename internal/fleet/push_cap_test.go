package fleet

import (
	"testing"
	"time"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// One tick takes at most maxPushesPerTick pushes, all campaigns together,
// so that a batch of a million devices does not hold the lock for seconds;
// the next ticks take the rest.
func TestPushesPerTickAreBounded(t *testing.T) {
	const n = 2*maxPushesPerTick + 500
	e, _ := memEngine(t, n)
	e.opts.IgnoreCampaignRate = true
	var c *campaign
	for _, c = range e.campaigns {
	}
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, tk := range c.tasks {
		e.setState(tk, otav1.TaskQueued, now)
		c.enqueue(tk)
	}
	out := e.collectPushes(c, now, nil)
	if len(out) != maxPushesPerTick {
		t.Fatalf("first tick pushed %d, want %d", len(out), maxPushesPerTick)
	}
	if again := e.collectPushes(c, now, out); len(again) != maxPushesPerTick {
		t.Fatalf("a second campaign in the same tick added %d pushes, want none", len(again)-maxPushesPerTick)
	}
	var ticks []int
	for total := len(out); total < n && len(ticks) < 5; {
		got := len(e.collectPushes(c, now, nil))
		ticks = append(ticks, got)
		total += got
	}
	if len(ticks) != 2 || ticks[0] != maxPushesPerTick || ticks[1] != 500 {
		t.Fatalf("later ticks pushed %v, want [%d 500]", ticks, maxPushesPerTick)
	}
}
