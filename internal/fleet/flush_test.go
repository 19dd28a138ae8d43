package fleet

import (
	"testing"
	"time"
)

// The flush window stays at the interval for small flushes and grows with
// the writes a flush made, up to the bound.
func TestNextFlushFollowsWriteRate(t *testing.T) {
	e := &Engine{opts: Options{FlushInterval: time.Second, WriteRate: 100, MaxFlushInterval: 10 * time.Second}}
	for _, c := range []struct {
		writes int
		want   time.Duration
	}{
		{0, time.Second}, {50, time.Second}, {100, time.Second}, {250, 2500 * time.Millisecond},
		{1000, 10 * time.Second}, {5000, 10 * time.Second},
	} {
		if got := e.nextFlush(c.writes); got != c.want {
			t.Errorf("after %d writes: wait %s, want %s", c.writes, got, c.want)
		}
	}
	e.opts.MaxFlushInterval = 0 // never below the interval
	if got := e.nextFlush(1000); got != time.Second {
		t.Errorf("with no room to grow: %s", got)
	}
}
