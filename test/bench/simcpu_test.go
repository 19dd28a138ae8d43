package bench

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/lab"
	"github.com/otafleet/otafleet/internal/mqtt"
	"github.com/otafleet/otafleet/internal/protocol"
	"github.com/otafleet/otafleet/internal/testserver"
)

// BenchmarkSimulatorCPU measures the simulator alone: Mosquitto and
// cmd/devicesim run as processes, configured as in the separate rollout,
// and a backend in this process pushes an upgrade to each of BENCH_DEVICES
// devices (64 in flight, as the engine does) and counts the informs of the
// new version. It prints the simulator's and the broker's CPU per 1,000
// upgrades without an API server or an operator: seconds a run instead of
// minutes, to profile the simulator (BENCH_CPUPROFILE) and to compare two
// builds of it (BENCH_DEVICESIM).
func BenchmarkSimulatorCPU(b *testing.B) {
	n := devices()
	ctx := context.Background()
	broker, err := testserver.StartMosquitto(ctx, testserver.MosquittoOptions{})
	must(b, err)
	defer func() { _ = broker.Stop() }()
	const pk = "simcpu"
	var informed, upgraded atomic.Int64
	backend := connectBackend(b, broker.URL, pk, func(m paho.Message) {
		switch {
		case !bytes.Contains([]byte(m.Topic()), []byte("/inform/")):
		case bytes.Contains(m.Payload(), []byte(`"2.0.0"`)):
			upgraded.Add(1)
		default:
			informed.Add(1)
		}
	})
	defer backend.Disconnect(100)
	sim, err := startSimulator(ctx, devicesim.Config{Broker: broker.URL, ProductKey: pk, Devices: n, NamePrefix: "dev-",
		Mode: devicesim.Multiplexed, Instant: true, WildcardSubscriptions: true, ProgressInterval: time.Millisecond}, true)
	must(b, err)
	defer sim.stop()
	must(b, waitCount(ctx, &informed, n, 3*time.Minute))

	cpu := newCPUMeter()
	cpu.add("simulator", sim.cmd.Process.Pid)
	cpu.add("broker", broker.Pid())
	cpu.begin()
	b.ResetTimer()
	start := time.Now()
	up := protocol.Upgrade{Version: "2.0.0", URL: "http://storage.invalid/fw.bin", Size: 1,
		MD5: "0123456789abcdef0123456789abcdef", SignMethod: protocol.SignMD5, Sign: "0123456789abcdef0123456789abcdef"}
	names, cfg := make([]string, n), devicesim.Config{Devices: n, NamePrefix: "dev-"}
	for i := range names {
		names[i] = cfg.DeviceName(i)
	}
	publishAll(b, backend, pk, names, up)
	must(b, waitCount(ctx, &upgraded, n, 5*time.Minute))
	elapsed := time.Since(start)
	used := cpu.used()
	b.StopTimer()

	fmt.Printf("\nsimulator alone: %d devices upgraded in %s (%.0f/s), broker Mosquitto\n", n, elapsed.Round(time.Millisecond),
		float64(n)/elapsed.Seconds())
	for _, name := range cpu.names {
		fmt.Printf("  CPU, %-10s %s, %.0f ms per 1,000 upgrades\n", name, used[name].Round(10*time.Millisecond),
			float64(used[name].Milliseconds())*1000/float64(n))
	}
	b.ReportMetric(float64(used["simulator"].Milliseconds())*1000/float64(n), "sim-cpu-ms/1000-upgrades")
}

// connectBackend connects a client standing in for the operator, subscribed
// to every device topic of pk.
func connectBackend(b *testing.B, url, pk string, handle func(paho.Message)) paho.Client {
	opts := paho.NewClientOptions().AddBroker(url).SetClientID("simcpu-backend").SetOrderMatters(false)
	mqtt.UseBufferedConnections(opts) // as the operator's gateway does
	c := paho.NewClient(opts)
	if tok := c.Connect(); tok.Wait() && tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	filters := map[string]byte{}
	for _, f := range protocol.DeviceFilters(pk) {
		filters[f] = 1
	}
	if tok := c.SubscribeMultiple(filters, func(_ paho.Client, m paho.Message) { handle(m) }); tok.Wait() && tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	return c
}

// waitCount polls a counter until it reaches want.
func waitCount(ctx context.Context, c *atomic.Int64, want int, timeout time.Duration) error {
	err := lab.Poll(ctx, timeout, func() (bool, error) { return c.Load() >= int64(want), nil })
	if err != nil {
		return fmt.Errorf("%d of %d: %w", c.Load(), want, err)
	}
	return nil
}
