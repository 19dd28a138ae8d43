package fleet

import (
	"testing"
	"time"
)

func TestHoldHistogramQuantiles(t *testing.T) {
	tests := []struct {
		name          string
		holds         []time.Duration
		p50, p99, max time.Duration
	}{
		{name: "empty"},
		{name: "one short hold", holds: []time.Duration{500 * time.Nanosecond}, p50: time.Microsecond, p99: time.Microsecond, max: time.Microsecond},
		{
			name:  "a slow tail",
			holds: append(repeat(99, 3*time.Microsecond), 40*time.Millisecond),
			p50:   4 * time.Microsecond, p99: 4 * time.Microsecond, max: 65536 * time.Microsecond,
		},
		{
			name:  "tail over one percent",
			holds: append(repeat(98, 3*time.Microsecond), 40*time.Millisecond, 40*time.Millisecond),
			p50:   4 * time.Microsecond, p99: 65536 * time.Microsecond, max: 65536 * time.Microsecond,
		},
		{name: "longer than the last bucket", holds: []time.Duration{time.Minute}, p50: bucketEnd(holdBuckets - 1), p99: bucketEnd(holdBuckets - 1), max: bucketEnd(holdBuckets - 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h holdHistogram
			for _, d := range tt.holds {
				h.observe(d)
			}
			s := h.summary()
			if s.Count != int64(len(tt.holds)) || s.P50 != tt.p50 || s.P99 != tt.p99 || s.Max != tt.max {
				t.Fatalf("summary = %+v, want count %d p50 %s p99 %s max %s", s, len(tt.holds), tt.p50, tt.p99, tt.max)
			}
		})
	}
}

func repeat(n int, d time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

func TestLockHoldsSince(t *testing.T) {
	var h holdHistogram
	for range 10 {
		h.observe(time.Second)
	}
	before := h.summary()
	for range 3 {
		h.observe(3 * time.Microsecond)
	}
	s := h.summary().Since(before)
	if s.Count != 3 || s.Max != 4*time.Microsecond || s.Total != 9*time.Microsecond {
		t.Fatalf("since = %+v, want the 3 short holds only", s)
	}
}

// The longest hold names the function that held the lock, through the
// engine's unlock helper too.
func TestLongestHoldNamesItsHolder(t *testing.T) {
	e := &Engine{}
	e.mu.Lock()
	e.mu.Unlock()
	holdLong(e, 2*time.Millisecond)
	l := e.LockHolds().Longest
	if l.Duration < 2*time.Millisecond || l.In != "fleet.holdLong" {
		t.Fatalf("longest hold %+v, want at least 2ms in fleet.holdLong", l)
	}
}

// holdLong holds the lock for d (a long hold to find, not a wait for
// anything).
func holdLong(e *Engine, d time.Duration) {
	e.mu.Lock()
	defer e.unlock()
	time.Sleep(d)
}
