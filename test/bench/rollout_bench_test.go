// Package bench measures otafleet at fleet scale on real parts: a static
// UpgradeBatch to N simulated devices (BENCH_DEVICES, default 10,000) that
// upgrade at once, through the real API server, etcd, broker, MinIO and
// manager, with the floors the same machine sets for its parts.
package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/fleet"
	"github.com/otafleet/otafleet/internal/lab"
	"github.com/otafleet/otafleet/internal/operator"
)

func devices() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_DEVICES")); err == nil && n > 0 {
		return n
	}
	return 10000
}

// variant is one way to run the rollout.
type variant struct {
	name string
	// downloads makes devices fetch the image from MinIO through the
	// pre-signed URL; otherwise they skip the download.
	downloads bool
	// separate runs Mosquitto and the simulator as their own processes, so
	// that this process's heap is the operator's alone.
	separate bool
	// list selects the devices by a list of every name kept in object
	// storage (a List scope), instead of scope All: the engine then holds
	// the campaign's set of names, which a status read must not rebuild.
	list bool
}

var variants = []variant{
	{name: "instant"},
	{name: "downloads", downloads: true},
	{name: "separate", separate: true},
	{name: "list", list: true},
}

// BenchmarkRollout runs one static rollout per variant (BENCH_RUNS, a
// comma-separated list; default all) and prints its figures.
func BenchmarkRollout(b *testing.B) {
	runs := os.Getenv("BENCH_RUNS")
	for _, v := range variants {
		if runs != "" && !strings.Contains(","+runs+",", ","+v.name+",") {
			continue
		}
		b.Run(v.name, func(b *testing.B) { rollout(b, v) })
	}
}

func rollout(b *testing.B, v variant) {
	n := devices()
	ctx := context.Background()
	mosquitto := v.separate || os.Getenv("BENCH_BROKER") == "mosquitto"
	// Each device sends three messages in a burst (progress 0, 100, inform);
	// the broker's queue for the operator must hold them.
	queue := int32(max(16384, 4*n))
	l, err := lab.Start(ctx, lab.Options{Engine: operator.EngineOptions{IgnoreCampaignRate: true},
		BrokerQueue: queue, Mosquitto: mosquitto})
	must(b, err)
	stopLab := sync.OnceFunc(l.Stop)
	defer stopLab()
	c := l.Client()
	const ns, pk = "bench", "benchkey"
	must(b, l.CreateProduct(ctx, &otav1.Product{ObjectMeta: lab.ObjectMeta(ns, "p"), Spec: otav1.ProductSpec{ProductKey: pk}}))
	base := heapNow()
	t0 := time.Now()
	sim, err := startSimulator(ctx, l.FleetConfig(devicesim.Config{ProductKey: pk, Devices: n, NamePrefix: "dev-",
		Mode: devicesim.Multiplexed, Instant: !v.downloads, WildcardSubscriptions: n <= wildcardUpTo, ProgressInterval: time.Millisecond}), v.separate)
	must(b, err)
	defer sim.stop()
	fw := &otav1.Firmware{ObjectMeta: lab.ObjectMeta(ns, "fw"), Spec: otav1.FirmwareSpec{Product: "p", Version: "2.0.0",
		VerificationRequired: ptr.To(false)}}
	must(b, l.PushFirmware(ctx, fw, make([]byte, 4096)))
	if v.list {
		must(b, putDeviceList(ctx, l, ns+"/devices.txt", "dev-", n))
	}
	// Let the inventory writes of the boot settle so they are not counted.
	must(b, lab.Poll(ctx, scaled(3*time.Minute, n), func() (bool, error) {
		inv, ok := l.Parts.Engine.Inventory(pk)
		return ok && inv.Devices >= int64(n), nil
	}))
	l.Parts.Engine.Flush(ctx)
	stage("%s: %d devices connected and informed in %s", v.name, n, time.Since(t0).Round(time.Millisecond))

	counters, err := newServerCounters(l.ControlPlane.Config, l.ControlPlane.Env.ControlPlane.Etcd.URL.String())
	must(b, err)
	before, holdsBefore := l.Parts.Engine.Stats(), l.Parts.Engine.LockHolds()
	gwBefore := l.Parts.Gateway.Stats()
	serverBefore, err := counters.read(ctx)
	must(b, err)

	cpu := newCPUMeter()
	cpu.add(processLabel(v, mosquitto), 0)
	if sim.cmd != nil {
		cpu.add("simulator", sim.cmd.Process.Pid)
	}
	if l.Mosquitto != nil {
		cpu.add("broker", l.Mosquitto.Pid())
	}
	cpu.begin()
	var peak atomic.Uint64
	stopHeap := sampleHeap(&peak)
	stopProfile := profile(b, v.name)
	b.ResetTimer()
	start := time.Now()
	ub := &otav1.UpgradeBatch{ObjectMeta: lab.ObjectMeta(ns, "ub"), Spec: otav1.UpgradeBatchSpec{Firmware: fw.Name}}
	if v.list {
		ub.Spec.Scope = otav1.Scope{Type: otav1.ScopeList, DevicesFrom: &otav1.DeviceListSource{
			Object: &otav1.ObjectSource{Key: ns + "/devices.txt"}}}
	}
	must(b, c.Create(ctx, ub))
	sources := []func() int64{func() int64 { return l.Parts.Engine.Stats().Succeeded }}
	if up, ok := sim.upgraded(); ok {
		sources = append(sources, up)
	}
	stopTracking := track(n, sources...)
	var statusSeen percentTimes
	var mid uint64 // live heap halfway: every task is still held
	last := time.Now()
	must(b, l.WaitBatch(ctx, ub, scaled(10*time.Minute, n), func(u *otav1.UpgradeBatch) bool {
		return u.Status.Phase == otav1.BatchCompleted && u.Status.Counts.Succeeded == int64(n)
	}, func(u *otav1.UpgradeBatch) {
		statusSeen.mark(u.Status.Counts.Succeeded, n, time.Now())
		if mid == 0 && 2*u.Status.Counts.Succeeded >= int64(n) {
			mid = heapNow()
		}
		if time.Since(last) >= 5*time.Second {
			last = time.Now()
			stage("%s: %+v", u.Status.Phase, u.Status.Counts)
		}
	}))
	elapsed := time.Since(start)
	holds := l.Parts.Engine.LockHolds().Since(holdsBefore)
	cpuUsed := cpu.used()
	b.StopTimer()
	stopProfile()
	stopHeap()

	seen := stopTracking()
	l.Parts.Engine.Flush(ctx)
	after, gwAfter := l.Parts.Engine.Stats(), l.Parts.Gateway.Stats()
	serverAfter, err := counters.read(ctx)
	must(b, err)

	r := report{variant: v, n: n, mosquitto: mosquitto, elapsed: elapsed, heap: peak.Load(), baseHeap: base, liveHeap: mid, holds: holds, cpu: cpuUsed, cpuOrder: cpu.names,
		writes: float64(after.Writes - before.Writes),
		mqtt:   float64(gwAfter.Received - gwBefore.Received + gwAfter.Published - gwBefore.Published)}
	r.apiWrites, r.apiByResource = apiWrites(serverBefore.api, serverAfter.api)
	r.walBytes = sum(serverAfter.etcd, "etcd_disk_wal_write_bytes_total") - sum(serverBefore.etcd, "etcd_disk_wal_write_bytes_total")
	r.dbBytes = sum(serverAfter.etcd, "etcd_mvcc_db_total_size_in_bytes")
	r.engineLag50, r.engineLag99, _ = lag(seen[0], statusSeen)
	if len(seen) > 1 {
		r.deviceLag50, r.deviceLag99, r.deviceLag = lag(seen[1], statusSeen)
	}
	stage("engine %+v", after)
	stage("gateway %+v", gwAfter)
	r.listings = pageAll(b, l, ns, "p", ub.Name)
	r.stopTime, r.resyncTime = failover(b, l, ns, n)
	sim.stop()
	stopLab()

	if os.Getenv("BENCH_FLOORS") == "off" {
		r.print(b)
		return
	}
	// The floors, on the same machine with nothing else running.
	r.brokerTime, r.brokerMessages = brokerAlone(b, n, queue, mosquitto)
	r.rawRate = rawPublish(b, min(4*n, 200000), queue, mosquitto)
	r.apiTime = apiAlone(b, n, int(r.writes))
	if v.downloads {
		r.storageTime = storageAlone(b, n)
	}
	r.print(b)
}

// report is one run's figures.
type report struct {
	variant
	n                        int
	mosquitto                bool
	elapsed                  time.Duration
	heap, baseHeap, liveHeap uint64
	writes, mqtt             float64
	apiWrites                float64
	apiByResource            map[string]float64
	walBytes, dbBytes        float64
	engineLag50, engineLag99 time.Duration
	deviceLag50, deviceLag99 time.Duration
	deviceLag                bool
	holds                    fleet.LockHolds
	cpu                      map[string]time.Duration
	cpuOrder                 []string
	brokerTime, apiTime      time.Duration
	storageTime              time.Duration
	stopTime, resyncTime     time.Duration
	listings                 []listing
	brokerMessages           int64
	rawRate                  float64
}

func (r *report) print(b *testing.B) {
	n, secs := float64(r.n), r.elapsed.Seconds()
	broker, sim, heapOf := "Mochi in this process", "in this process", "operator + broker + simulator"
	if r.mosquitto {
		broker, heapOf = "Mosquitto (own process)", "operator + simulator"
	}
	if r.separate {
		sim, heapOf = "own process", "operator alone"
	}
	devLag := "not measured (simulator in its own process)"
	if r.deviceLag {
		devLag = fmt.Sprintf("p50 %s, p99 %s", r.deviceLag50.Round(time.Millisecond), r.deviceLag99.Round(time.Millisecond))
	}
	floor := max(r.brokerTime, r.apiTime, r.storageTime)
	var w strings.Builder
	fmt.Fprintf(&w, "\nrollout %s: %d devices, downloads %v, broker %s, simulator %s\n", r.name, r.n, r.downloads, broker, sim)
	fmt.Fprintf(&w, "  wall time (batch created -> Completed)  %s, %.0f devices/s\n", r.elapsed.Round(time.Millisecond), n/secs)
	fmt.Fprintf(&w, "  API writes, counted by the operator     %.0f (%.3f per device)\n", r.writes, r.writes/n)
	fmt.Fprintf(&w, "  API writes, counted by the API server   %.0f (%.3f per device): %s\n", r.apiWrites, r.apiWrites/n, formatCounts(r.apiByResource))
	fmt.Fprintf(&w, "  etcd WAL bytes written                  %.1f MiB (%.0f B per device); db size %.0f MiB\n", r.walBytes/(1<<20), r.walBytes/n, r.dbBytes/(1<<20))
	fmt.Fprintf(&w, "  MQTT messages at the operator           %.0f (%.0f/s)\n", r.mqtt, r.mqtt/secs)
	fmt.Fprintf(&w, "  status lag, device's inform -> status   %s\n", devLag)
	fmt.Fprintf(&w, "  status lag, engine applied -> status    p50 %s, p99 %s\n", r.engineLag50.Round(time.Millisecond), r.engineLag99.Round(time.Millisecond))
	for _, name := range r.cpuOrder {
		used := r.cpu[name]
		fmt.Fprintf(&w, "  CPU, %-33s %s, %.0f ms per 1,000 upgrades\n", name, used.Round(10*time.Millisecond),
			float64(used.Milliseconds())*1000/n)
	}
	fmt.Fprintf(&w, "  engine lock held                        %d times, p50 < %s, p99 < %s, max < %s, %s in all\n",
		r.holds.Count, r.holds.P50, r.holds.P99, r.holds.Max, r.holds.Total.Round(time.Millisecond))
	fmt.Fprintf(&w, "  engine lock, longest hold since start   %s in %s\n", r.holds.Longest.Duration.Round(time.Microsecond), r.holds.Longest.In)
	fmt.Fprintf(&w, "  heap (%s)%s peak %d MiB, live halfway %d MiB, before the devices %d MiB:\n",
		heapOf, strings.Repeat(" ", max(1, 30-len(heapOf))), r.heap>>20, r.liveHeap>>20, r.baseHeap>>20)
	fmt.Fprintf(&w, "                                          %.0f B per tracked device live, %.0f B at the peak\n",
		perDevice(r.liveHeap, r.baseHeap, n), perDevice(r.heap, r.baseHeap, n))
	fmt.Fprintf(&w, "  failover: old manager stopped in %s; new one rebuilt %d devices and the batch from the slices in %s\n",
		r.stopTime.Round(time.Millisecond), r.n, r.resyncTime.Round(time.Millisecond))
	for _, l := range r.listings {
		if l.err != nil {
			fmt.Fprintf(&w, "  kubectl ota devices %-19s failed: %v\n", l.what, l.err)
			continue
		}
		fmt.Fprintf(&w, "  kubectl ota devices %-19s %d rows in %s, the first after %s\n", l.what, l.rows,
			l.all.Round(time.Millisecond), l.first.Round(time.Millisecond))
	}
	if floor > 0 {
		r.printFloors(&w, floor)
	} else {
		fmt.Fprintf(&w, "  floors                                  not measured (BENCH_FLOORS=off)\n")
	}
	fmt.Print(w.String())
	b.ReportMetric(n/secs, "devices/s")
	b.ReportMetric(r.apiWrites/n, "api-writes/device")
	b.ReportMetric(r.walBytes/n, "wal-B/device")
	b.ReportMetric(perDevice(r.liveHeap, r.baseHeap, n), "live-heap-B/device")
	if len(r.cpuOrder) > 0 {
		b.ReportMetric(float64(r.cpu[r.cpuOrder[0]].Milliseconds())*1000/n, "cpu-ms/1000-upgrades")
	}
	if floor > 0 {
		b.ReportMetric(secs/floor.Seconds(), "x-floor")
	}
}

func (r *report) printFloors(w *strings.Builder, floor time.Duration) {
	n, secs := float64(r.n), r.elapsed.Seconds()
	fmt.Fprintf(w, "  floor: broker + simulator alone         %s (%d messages, %.0f/s)\n", r.brokerTime.Round(time.Millisecond), r.brokerMessages, float64(r.brokerMessages)/r.brokerTime.Seconds())
	fmt.Fprintf(w, "  floor: API server alone, same writes    %s\n", r.apiTime.Round(time.Millisecond))
	if r.downloads {
		fmt.Fprintf(w, "  floor: MinIO alone, same downloads      %s (%.0f GETs/s through fresh pre-signed URLs)\n",
			r.storageTime.Round(time.Millisecond), n/r.storageTime.Seconds())
	}
	fmt.Fprintf(w, "  broker raw publish rate                 %.0f messages/s (QoS 1, 300 B, 64 in flight)\n", r.rawRate)
	fmt.Fprintf(w, "  rollout / max(floors)                   %.2f\n", secs/floor.Seconds())
	// Each floor takes both cores, so they cannot overlap on this machine:
	// the rollout, which does all of it, is compared with their sum too.
	sum := r.brokerTime + r.apiTime + r.storageTime
	fmt.Fprintf(w, "  rollout / sum of floors                 %.2f (%s)\n", secs/sum.Seconds(), sum.Round(time.Millisecond))
}

// wildcardUpTo is the largest fleet whose simulated connections subscribe
// with product-wide wildcards (cheap subscriptions, but every push reaches
// every connection: 400 connections of a million devices would make the
// broker deliver 400 million pushes); above it each device subscribes to
// its own topics.
const wildcardUpTo = 200_000

// scaled is a deadline of d per 100,000 devices, and at least d: at a
// million devices the operator takes its reports in at a few thousand a
// second, so a fixed deadline fails the run, not the operator.
func scaled(d time.Duration, devices int) time.Duration {
	return max(d, d*time.Duration(devices)/100_000)
}

// profile writes a CPU profile of the rollout (not of the floors) to
// $BENCH_CPUPROFILE-<variant> when BENCH_CPUPROFILE is set.
func profile(b *testing.B, name string) (stop func()) {
	path := os.Getenv("BENCH_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path + "-" + name)
	must(b, err)
	must(b, pprof.StartCPUProfile(f))
	return func() {
		pprof.StopCPUProfile()
		must(b, f.Close())
	}
}

// failover replaces the manager, as a new leader takes over, and times the
// old one's stop and the new one's rebuild from the slices until its engine
// is ready and shows the finished batch's counters. The lab runs without
// leader election: the lease wait (up to its 15 s duration when the old
// leader dies without releasing it) is not included.
func failover(b *testing.B, l *lab.Lab, ns string, n int) (stop, resync time.Duration) {
	ctx := context.Background()
	t := time.Now()
	must(b, l.StopManager(ctx))
	stop = time.Since(t)
	t = time.Now()
	must(b, l.StartManager(ctx))
	ref := otav1.CampaignReference{Kind: otav1.KindUpgradeBatch, Name: "ub"}
	must(b, lab.Poll(ctx, 2*time.Minute, func() (bool, error) {
		st, ok := l.Parts.Engine.Status(ns, ref)
		return ok && st.Counts.Succeeded == int64(n), nil
	}))
	return stop, time.Since(t)
}

func perDevice(heap, base uint64, n float64) float64 {
	return float64(heap-min(heap, base)) / n
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

// putDeviceList stores the names of n simulated devices, one a line.
func putDeviceList(ctx context.Context, l *lab.Lab, key, prefix string, n int) error {
	var buf bytes.Buffer
	cfg := devicesim.Config{Devices: n, NamePrefix: prefix}
	for i := range n {
		buf.WriteString(cfg.DeviceName(i) + "\n")
	}
	_, err := l.Parts.Store.Put(ctx, l.Bucket(), key, &buf, int64(buf.Len()), "")
	return err
}

// processLabel says what this process holds besides the operator.
func processLabel(v variant, mosquitto bool) string {
	switch {
	case v.separate:
		return "operator (this process)"
	case mosquitto:
		return "operator + simulator (this process)"
	}
	return "operator + broker + simulator"
}
