// Package bench measures otafleet at fleet scale on real parts: a static
// UpgradeBatch to N simulated devices (BENCH_DEVICES, default 10,000) that
// upgrade at once, through the real API server, broker and manager.
package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/lab"
	"github.com/otafleet/otafleet/internal/operator"
)

func devices() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_DEVICES")); err == nil && n > 0 {
		return n
	}
	return 10000
}

// BenchmarkRollout reports devices/s, API writes per device and heap per
// device for one static rollout with instant devices and no rate limit.
func BenchmarkRollout(b *testing.B) {
	n := devices()
	ctx := context.Background()
	// Each device sends three messages in a burst (progress 0, 100, inform);
	// the broker's queue for the operator must hold them.
	mosquitto := os.Getenv("BENCH_BROKER") == "mosquitto"
	l, err := lab.Start(ctx, lab.Options{Engine: operator.EngineOptions{IgnoreCampaignRate: true},
		BrokerQueue: int32(max(16384, 4*n)), Mosquitto: mosquitto})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Stop()
	c := l.Client()
	const ns, pk = "bench", "benchkey"
	must(b, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	must(b, c.Create(ctx, &otav1.Product{ObjectMeta: lab.ObjectMeta(ns, "p"), Spec: otav1.ProductSpec{ProductKey: pk}}))
	must(b, lab.Poll(ctx, 30*time.Second, func() (bool, error) {
		_, ok := l.Parts.Engine.ProductKeyOf(types.NamespacedName{Namespace: ns, Name: "p"})
		return ok, nil
	}))
	t0 := time.Now()
	fleet, err := devicesim.Start(ctx, devicesim.Config{Broker: l.BrokerURL, ProductKey: pk, Devices: n,
		Mode: devicesim.Multiplexed, Instant: true, WildcardSubscriptions: true})
	must(b, err)
	defer fleet.Stop()
	must(b, fleet.WaitInformed(ctx))
	informTime := time.Since(t0)
	stage("%d devices connected and informed in %s", n, informTime.Round(time.Millisecond))

	fw := &otav1.Firmware{ObjectMeta: lab.ObjectMeta(ns, "fw"), Spec: otav1.FirmwareSpec{Product: "p", Version: "2.0.0",
		VerificationRequired: ptr.To(false)}}
	must(b, l.PushFirmware(ctx, fw, make([]byte, 4096)))
	// Let the inventory writes of the boot settle so they are not counted.
	must(b, lab.Poll(ctx, 3*time.Minute, func() (bool, error) {
		s := l.Parts.Engine.Stats()
		return s.Informs >= int64(n), nil
	}))
	l.Parts.Engine.Flush(ctx)
	before := l.Parts.Engine.Stats()
	stage("inventory registered and written; starting the batch")

	var peak atomic.Uint64
	stop := sampleHeap(&peak)
	b.ResetTimer()
	start := time.Now()
	ub := &otav1.UpgradeBatch{ObjectMeta: lab.ObjectMeta(ns, "ub"), Spec: otav1.UpgradeBatchSpec{Firmware: fw.Name}}
	must(b, c.Create(ctx, ub))
	last := time.Now()
	engineSeen := trackEngine(l, n)
	statusSeen := make([]time.Time, 101)
	must(b, l.WaitBatch(ctx, ub, 5*time.Minute, func(u *otav1.UpgradeBatch) bool {
		return u.Status.Phase == otav1.BatchCompleted && u.Status.Counts.Succeeded == int64(n)
	}, func(u *otav1.UpgradeBatch) {
		markPercent(statusSeen, u.Status.Counts.Succeeded, n, time.Now())
		if time.Since(last) >= 5*time.Second {
			last = time.Now()
			stage("%s: %+v", u.Status.Phase, u.Status.Counts)
		}
	}))
	p50, p99 := statusLag(engineSeen(), statusSeen)
	elapsed := time.Since(start)
	b.StopTimer()
	stop()
	l.Parts.Engine.Flush(ctx)
	after := l.Parts.Engine.Stats()
	writes := float64(after.Writes - before.Writes)
	stage("engine %+v", after)
	stage("gateway %+v", l.Parts.Gateway.Stats())

	brokerTime := brokerAlone(b, n, int32(max(16384, 4*n)), mosquitto)
	apiTime := apiAlone(b, c, ns, n, int(writes))
	floor := max(brokerTime, apiTime)
	stage("ceiling: the broker alone carries the rollout's messages in %s, the API server alone takes %s for its writes; rollout/floor = %.2f",
		brokerTime.Round(time.Millisecond), apiTime.Round(time.Millisecond), elapsed.Seconds()/floor.Seconds())
	b.ReportMetric(elapsed.Seconds()/floor.Seconds(), "x-floor")

	stage("status lag (engine applied -> UpgradeBatch status shows it, per percentile of devices): p50 %s, p99 %s",
		p50.Round(time.Millisecond), p99.Round(time.Millisecond))
	b.ReportMetric(p99.Seconds(), "s-status-lag-p99")
	b.ReportMetric(float64(n)/elapsed.Seconds(), "devices/s")
	b.ReportMetric(writes/float64(n), "writes/device")
	b.ReportMetric(float64(peak.Load())/float64(n), "heapB/device")
	fmt.Printf("rollout: %d devices in %s (%.0f devices/s), %0.f slice writes (%.3f per device), "+
		"peak heap %d MiB (%.0f B/device, operator + embedded broker + simulator), boot informs %s\n",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), writes, writes/float64(n),
		peak.Load()>>20, float64(peak.Load())/float64(n), informTime.Round(time.Millisecond))
}

// sampleHeap records the peak heap in use until the returned func is called.
func sampleHeap(peak *atomic.Uint64) func() {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done) }
}

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

// stage prints a progress line, so a slow run shows where it is.
func stage(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// trackEngine samples the engine's success count every 10 ms and returns a
// func that stops and returns, per percent of n, when the engine had it.
func trackEngine(l *lab.Lab, n int) func() []time.Time {
	seen := make([]time.Time, 101)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			markPercent(seen, l.Parts.Engine.Stats().Succeeded, n, time.Now())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() []time.Time { close(done); <-stopped; return seen }
}

// markPercent records the first time each percent of n was reached.
func markPercent(seen []time.Time, count int64, n int, now time.Time) {
	for p := 1; p <= 100 && int64(p)*int64(n) <= count*100; p++ {
		if seen[p].IsZero() {
			seen[p] = now
		}
	}
}

// statusLag is the p50 and p99, over the percents of devices, of the time
// from the engine counting them to the batch's status showing them.
func statusLag(engine, status []time.Time) (p50, p99 time.Duration) {
	var lags []time.Duration
	for p := 1; p <= 100; p++ {
		if !engine[p].IsZero() && !status[p].IsZero() {
			lags = append(lags, max(status[p].Sub(engine[p]), 0))
		}
	}
	if len(lags) == 0 {
		return 0, 0
	}
	slices.Sort(lags)
	return lags[len(lags)/2], lags[len(lags)*99/100]
}
