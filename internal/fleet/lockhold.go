package fleet

import (
	"math/bits"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// timedMutex is the engine's lock. It records how long each hold lasts:
// device ingest, the push loop and status reads all wait behind it, so its
// hold time is what bounds the engine's latency under load.
type timedMutex struct {
	sync.Mutex
	since time.Time
	holds holdHistogram
	// longest is the longest hold and the function that held the lock:
	// what a latency spike at scale is looked for with. Written under the
	// lock, read without it.
	longest atomic.Pointer[Hold]
}

// Hold is one hold of the engine lock.
type Hold struct {
	Duration time.Duration
	In       string // the function that held the lock
}

func (m *timedMutex) Lock() {
	m.Mutex.Lock()
	m.since = time.Now()
}

func (m *timedMutex) Unlock() {
	d := time.Since(m.since)
	m.holds.observe(d)
	if l := m.longest.Load(); l == nil || d > l.Duration {
		m.longest.Store(&Hold{Duration: d, In: holder()})
	}
	m.Mutex.Unlock()
}

// holder names the function that unlocks, skipping the lock's own
// helpers; it runs only when a hold is the longest yet.
func holder() string {
	pcs := make([]uintptr, 8)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(3, pcs)])
	for {
		f, more := frames.Next()
		if !strings.HasSuffix(f.Function, "(*Engine).unlock") || !more {
			return strings.TrimPrefix(f.Function, "github.com/otafleet/otafleet/internal/")
		}
	}
}

// holdBuckets: bucket i counts holds under 2^i microseconds; the last one
// (2^25 us, about 33 s) takes everything longer.
const holdBuckets = 26

// holdHistogram counts durations in power-of-two buckets without a lock.
type holdHistogram struct {
	counts [holdBuckets]atomic.Int64
	sumNs  atomic.Int64
}

func (h *holdHistogram) observe(d time.Duration) {
	us := uint64(max(d.Microseconds(), 0))
	i := min(bits.Len64(us), holdBuckets-1)
	h.counts[i].Add(1)
	h.sumNs.Add(int64(d))
}

// LockHolds summarizes the engine lock's hold times.
type LockHolds struct {
	// Buckets are the counts the summary is computed from: bucket i holds
	// the holds under 2^i microseconds.
	Buckets [holdBuckets]int64
	Count   int64
	// P50, P99 and Max are upper bounds: the end of the power-of-two
	// bucket the quantile falls in.
	P50, P99, Max time.Duration
	Total         time.Duration
	// Longest is the longest hold since the engine started, exactly.
	Longest Hold
}

func (h *holdHistogram) summary() LockHolds {
	var counts [holdBuckets]int64
	for i := range counts {
		counts[i] = h.counts[i].Load()
	}
	return summarize(counts, time.Duration(h.sumNs.Load()))
}

func summarize(counts [holdBuckets]int64, total time.Duration) LockHolds {
	s := LockHolds{Buckets: counts, Total: total}
	for _, c := range counts {
		s.Count += c
	}
	s.P50, s.P99 = quantile(counts[:], s.Count, 0.50), quantile(counts[:], s.Count, 0.99)
	s.Max = quantile(counts[:], s.Count, 1)
	return s
}

// Since summarizes the holds after prev, an earlier summary.
func (s LockHolds) Since(prev LockHolds) LockHolds {
	var counts [holdBuckets]int64
	for i := range counts {
		counts[i] = s.Buckets[i] - prev.Buckets[i]
	}
	out := summarize(counts, s.Total-prev.Total)
	out.Longest = s.Longest // since the start: one hold is not kept per window
	return out
}

func quantile(counts []int64, total int64, q float64) time.Duration {
	if total == 0 {
		return 0
	}
	rank := int64(q*float64(total) + 0.5)
	var seen int64
	for i, c := range counts {
		seen += c
		if seen >= max(rank, 1) {
			return bucketEnd(i)
		}
	}
	return bucketEnd(len(counts) - 1)
}

// bucketEnd is the exclusive upper bound of bucket i.
func bucketEnd(i int) time.Duration { return time.Duration(1<<i) * time.Microsecond }

// LockHolds returns the hold-time summary since the engine started.
func (e *Engine) LockHolds() LockHolds {
	s := e.mu.holds.summary()
	if l := e.mu.longest.Load(); l != nil {
		s.Longest = *l
	}
	return s
}

var descLockHold = prometheus.NewDesc("otafleet_engine_lock_hold_seconds",
	"How long the rollout engine's lock was held at a time: device ingest and status reads wait behind it.", nil, nil)

// holdMetric exports hold counts by bucket; Prometheus buckets are
// cumulative.
func holdMetric(counts [holdBuckets]int64, sum time.Duration) prometheus.Metric {
	buckets := make(map[float64]uint64, holdBuckets)
	var cum uint64
	for i, n := range counts {
		cum += uint64(n)
		buckets[bucketEnd(i).Seconds()] = cum
	}
	return prometheus.MustNewConstHistogram(descLockHold, cum, sum.Seconds(), buckets)
}
