package mqtt_test

import (
	"context"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/otafleet/otafleet/internal/mqtt"
	"github.com/otafleet/otafleet/internal/protocol"
	"github.com/otafleet/otafleet/internal/testserver"
)

const pk = "a1GatewayTest"

// recorder is a Handler that keeps every message and lets tests wait for a
// condition on them. onBatch, when set, runs after recording (outside the
// lock), to act like an engine.
type recorder struct {
	mu      sync.Mutex
	msgs    []protocol.Message
	changed chan struct{}
	onBatch func(ctx context.Context, msgs []protocol.Message)
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

func (r *recorder) HandleBatch(ctx context.Context, msgs []protocol.Message) func(context.Context) error {
	r.mu.Lock()
	r.msgs = append(r.msgs, msgs...)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	if r.onBatch != nil {
		r.onBatch(ctx, msgs)
	}
	return nil
}

func (r *recorder) snapshot() ([]protocol.Message, chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]protocol.Message(nil), r.msgs...), r.changed
}

func (r *recorder) waitFor(t *testing.T, what string, timeout time.Duration, cond func([]protocol.Message) bool) []protocol.Message {
	t.Helper()
	deadline := time.After(timeout)
	for {
		msgs, ch := r.snapshot()
		if cond(msgs) {
			return msgs
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; %d messages recorded", what, len(msgs))
		}
	}
}

func count(msgs []protocol.Message, kind protocol.Kind, dn string) int {
	n := 0
	for _, m := range msgs {
		if m.Kind == kind && (dn == "" || m.DeviceName == dn) {
			n++
		}
	}
	return n
}

func hasVersion(msgs []protocol.Message, dn, module, version string) bool {
	for _, m := range msgs {
		if m.Kind == protocol.KindInform && m.DeviceName == dn && m.Module == module && m.Version == version {
			return true
		}
	}
	return false
}

// runningGateway is a gateway started on its own goroutine.
type runningGateway struct {
	*mqtt.Gateway
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

// startGateway starts a gateway with its own metrics registry and waits
// until it is subscribed. Cleanup stops it.
func startGateway(t *testing.T, brokerURL, clientID string, h mqtt.Handler, edit func(*mqtt.Config)) *runningGateway {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := mqtt.Config{Brokers: []string{brokerURL}, ClientID: clientID, Registerer: reg, MaxReconnectInterval: time.Second}
	if edit != nil {
		edit(&cfg)
	}
	g, err := mqtt.New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	// Tests keep the gateway quiet; controller-runtime's global logger is
	// never set here.
	ctx, cancel := context.WithCancel(logr.NewContext(context.Background(), logr.Discard()))
	rg := &runningGateway{Gateway: g, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { rg.done <- g.Start(ctx) }()
	t.Cleanup(rg.stop)
	waitState(t, g, "subscribed", func(s mqtt.ConnectionState) bool { return s.Subscribed })
	return rg
}

func (rg *runningGateway) stop() {
	rg.cancel()
	<-rg.done
	rg.done <- nil // keep stop idempotent
}

func waitState(t *testing.T, g *mqtt.Gateway, what string, cond func(mqtt.ConnectionState) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.WaitFor(ctx, cond); err != nil {
		t.Fatalf("waiting until %s: %v", what, err)
	}
}

// metric sums the values of a counter or gauge family whose labels include
// the given pairs.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Histogram != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

func startMochi(t *testing.T) *testserver.Mochi {
	t.Helper()
	b, err := testserver.StartMochi(testserver.MochiOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Stop() })
	return b
}

// rawClient is a plain MQTT client for publishing what devices (or broken
// devices) send.
func rawClient(t *testing.T, url, id string) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(id).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c
}

func publish(t *testing.T, c paho.Client, topic string, qos byte, payload []byte) {
	t.Helper()
	if tok := c.Publish(topic, qos, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
