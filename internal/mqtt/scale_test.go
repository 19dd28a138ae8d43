package mqtt_test

import (
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/protocol"
	"github.com/otafleet/otafleet/internal/testserver"
)

// TestTenThousandMultiplexedDevices is the simulator's scale check: 10,000
// devices with two modules over 4 multiplexed connections against the
// embedded broker, every inform decoded by the gateway. It logs wall time
// and memory; run it alone (-run TenThousand -v) for a clean RSS figure.
func TestTenThousandMultiplexedDevices(t *testing.T) {
	const devices = 10000
	ctx := testContext(t, 5*time.Minute)
	b, err := testserver.StartMochi(testserver.MochiOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Stop() })
	rec := newRecorder()
	gw := startGateway(t, b.URL, "operator", rec, nil)

	start := time.Now()
	fleet, err := devicesim.Start(ctx, devicesim.Config{Broker: b.URL, ProductKey: pk, Devices: devices, Instant: true,
		Modules: []devicesim.Module{{Name: "wifi", Version: "1.0.0"}, {Name: "mcu", Version: "2.1"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Stop()
	connected := time.Since(start)
	if err := fleet.WaitInformed(ctx); err != nil {
		t.Fatal(err)
	}
	informed := time.Since(start)
	rec.waitFor(t, "every inform at the gateway", 2*time.Minute, func(m []protocol.Message) bool {
		return count(m, protocol.KindInform, "") >= 2*devices
	})
	decoded := time.Since(start)

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("%d devices x 2 modules over %d connections: connected+subscribed %v, all informs acknowledged %v, "+
		"all %d decoded by the gateway %v; whole test process (broker, gateway, simulator, recorded messages): "+
		"heap in use %d MiB, live heap after GC %d MiB, peak RSS %s",
		devices, fleet.Summary().Connections, connected.Round(time.Millisecond), informed.Round(time.Millisecond),
		2*devices, decoded.Round(time.Millisecond), before.HeapInuse>>20, after.HeapAlloc>>20, peakRSS())
	if s := gw.Stats(); s.Rejected != 0 || s.Dropped != 0 || s.Received != 2*devices {
		t.Fatalf("gateway stats %+v", s)
	}
}

func peakRSS() string {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
