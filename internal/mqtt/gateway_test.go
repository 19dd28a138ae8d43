package mqtt

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/otafleet/otafleet/internal/protocol"
)

// fakeMessage is a paho.Message that records its acknowledgement.
type fakeMessage struct {
	topic   string
	payload []byte
	qos     byte
	acked   atomic.Int32
}

func (m *fakeMessage) Duplicate() bool   { return false }
func (m *fakeMessage) Qos() byte         { return m.qos }
func (m *fakeMessage) Retained() bool    { return false }
func (m *fakeMessage) Topic() string     { return m.topic }
func (m *fakeMessage) MessageID() uint16 { return 1 }
func (m *fakeMessage) Payload() []byte   { return m.payload }
func (m *fakeMessage) Ack()              { m.acked.Add(1) }

func inform(dn string, qos byte) *fakeMessage {
	return &fakeMessage{topic: protocol.InformTopic("pk", dn), payload: []byte(`{"id":1,"params":{"version":"1.0"}}`), qos: qos}
}

func newTestGateway(t *testing.T, cfg Config, h Handler) *Gateway {
	t.Helper()
	cfg.Brokers = []string{"tcp://127.0.0.1:1"} // never dialled: these tests feed onMessage directly
	cfg.ClientID = "unit"
	cfg.Registerer = prometheus.NewRegistry()
	g, err := New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no broker":    {ClientID: "c"},
		"bad scheme":   {Brokers: []string{"http://broker:1883"}, ClientID: "c"},
		"no client id": {Brokers: []string{"tcp://broker:1883"}},
		"wildcard pk":  {Brokers: []string{"tcp://broker:1883"}, ClientID: "c", ProductKeys: []string{"a/#"}},
	} {
		if _, err := New(cfg, HandlerFunc(func(context.Context, []protocol.Message) {})); err == nil {
			t.Errorf("%s: New accepted the config", name)
		}
	}
	cfg := Config{ProductKeys: []string{"pkA"}}
	got := strings.Join(cfg.filters(), " ")
	want := "/ota/device/inform/pkA/+ /ota/device/progress/pkA/+ " +
		"/sys/pkA/+/thing/ota/firmware/get /ota/device/request/pkA/+"
	if got != want {
		t.Errorf("filters = %s\nwant %s", got, want)
	}
	if n := len((&Config{}).filters()); n != 4 {
		t.Errorf("all products: %d filters, want 4", n)
	}
}

// TestAckAfterHandler checks the acknowledgement policy: nothing is acked
// before HandleBatch returns, everything after, and nothing when the
// gateway stops during the call.
func TestAckAfterHandler(t *testing.T) {
	entered, release := make(chan int), make(chan struct{})
	g := newTestGateway(t, Config{BatchSize: 10}, HandlerFunc(func(_ context.Context, msgs []protocol.Message) {
		entered <- len(msgs)
		<-release
	}))
	msgs := []*fakeMessage{inform("a", 1), inform("b", 1), inform("c", 1)}
	for _, m := range msgs {
		g.onMessage(nil, m)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.ingest(ctx); close(done) }()
	if n := <-entered; n != 3 {
		t.Fatalf("first batch has %d messages, want all 3 queued", n)
	}
	for _, m := range msgs {
		if m.acked.Load() != 0 {
			t.Fatal("acknowledged before the handler returned")
		}
	}
	release <- struct{}{}
	last := inform("d", 1)
	g.onMessage(nil, last)
	<-entered
	waitAcked(t, msgs...)
	cancel()
	release <- struct{}{}
	<-done
	if last.acked.Load() != 0 {
		t.Fatal("a batch handled while stopping was acknowledged; the broker would not redeliver it")
	}
}

// A batch whose effect is not durable yet is not acknowledged, while the
// gateway goes on with the next batches; it is once durable returns.
func TestAckOnlyOnceDurable(t *testing.T) {
	entered, written := make(chan string, 10), make(chan struct{})
	h := handlerWith(func(msgs []protocol.Message) func(context.Context) error {
		entered <- msgs[0].DeviceName
		if msgs[0].DeviceName != "a" {
			return nil
		}
		return func(ctx context.Context) error {
			select {
			case <-written:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	})
	g := newTestGateway(t, Config{BatchSize: 1}, h)
	a, b := inform("a", 1), inform("b", 1)
	g.onMessage(nil, a)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go g.ingest(ctx)
	<-entered
	g.onMessage(nil, b)
	<-entered // the gateway handles the next batch meanwhile
	if a.acked.Load() != 0 || b.acked.Load() != 0 {
		t.Fatalf("acked a %d, b %d times before a's effect was durable; want 0 (acks stay in order)", a.acked.Load(), b.acked.Load())
	}
	close(written)
	waitAcked(t, a, b)
}

// handlerWith adapts a function returning the durable wait to Handler.
type handlerWith func(msgs []protocol.Message) func(context.Context) error

func (h handlerWith) HandleBatch(_ context.Context, msgs []protocol.Message) func(context.Context) error {
	return h(msgs)
}

// waitAcked polls until every message is acknowledged exactly once.
func waitAcked(t *testing.T, msgs ...*fakeMessage) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, m := range msgs {
		for m.acked.Load() == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond) // polling interval
		}
		if n := m.acked.Load(); n != 1 {
			t.Fatalf("message acked %d times, want 1", n)
		}
	}
}

func TestQueueFullPolicy(t *testing.T) {
	got := make(chan string, 10)
	g := newTestGateway(t, Config{QueueSize: 2, BatchSize: 1}, HandlerFunc(func(_ context.Context, msgs []protocol.Message) {
		for _, m := range msgs {
			got <- m.DeviceName
		}
	}))
	g.onMessage(nil, inform("a", 1))
	g.onMessage(nil, inform("b", 1))
	// QoS 0: dropped and counted (QoS 0 has nothing to acknowledge).
	g.onMessage(nil, inform("c", 0))
	if s := g.Stats(); s.Dropped != 1 || s.Received != 3 {
		t.Fatalf("stats %+v: want the QoS 0 message dropped", s)
	}
	// QoS 1: waits for room instead.
	waiting := inform("d", 1)
	returned := make(chan struct{})
	go func() { g.onMessage(nil, waiting); close(returned) }()
	select {
	case <-returned:
		t.Fatal("a QoS 1 message did not wait for room in a full queue")
	case <-time.After(50 * time.Millisecond): // proving a wait needs some time to pass
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go g.ingest(ctx)
	<-returned
	var names []string
	for range 3 {
		names = append(names, <-got)
	}
	if strings.Join(names, ",") != "a,b,d" {
		t.Fatalf("handled %v, want a, b and the QoS 1 message that waited", names)
	}
}

func TestInvalidMessagesAreCountedAndAcked(t *testing.T) {
	g := newTestGateway(t, Config{}, HandlerFunc(func(context.Context, []protocol.Message) {
		t.Error("the handler must not see invalid messages")
	}))
	bad := []*fakeMessage{
		{topic: protocol.InformTopic("pk", "d"), payload: []byte(`{`), qos: 1},
		{topic: protocol.ProgressTopic("pk", "d"), payload: []byte(`{"params":{"step":"250"}}`), qos: 1},
		{topic: "/ota/device/inform//d", payload: []byte(`{"params":{"version":"1"}}`), qos: 0},
	}
	own := &fakeMessage{topic: protocol.RequestTopic("pk", "d"), payload: []byte(`{"code":"1000","message":"success","id":1,"data":{}}`), qos: 1}
	for _, m := range append(bad, own) {
		g.onMessage(nil, m)
		if m.acked.Load() != 1 {
			t.Errorf("%s %s not acknowledged", m.topic, m.payload)
		}
	}
	if s := g.Stats(); s.Rejected != 3 || s.Ignored != 1 || s.Received != 0 || len(g.queue) != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestHandlerPanicDoesNotStopDelivery(t *testing.T) {
	calls := make(chan int, 2)
	g := newTestGateway(t, Config{BatchSize: 1}, HandlerFunc(func(_ context.Context, msgs []protocol.Message) {
		calls <- 1
		if msgs[0].DeviceName == "boom" {
			panic("handler bug")
		}
	}))
	boom, ok := inform("boom", 1), inform("fine", 1)
	g.onMessage(nil, boom)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go g.ingest(ctx)
	<-calls
	g.onMessage(nil, ok)
	<-calls
	// A batch whose handler panicked must be acknowledged, or it would
	// panic again on redelivery.
	waitAcked(t, boom)
	cancel()
}

var (
	_ manager.Runnable               = (*Gateway)(nil)
	_ manager.LeaderElectionRunnable = (*Gateway)(nil)
)

// TestDefaultRegistry: without a Registerer the metrics land in
// controller-runtime's registry, and a second gateway shares them instead
// of failing to register.
func TestDefaultRegistry(t *testing.T) {
	h := HandlerFunc(func(context.Context, []protocol.Message) {})
	cfg := Config{Brokers: []string{"tcp://127.0.0.1:1"}, ClientID: "a"}
	g1, err := New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg, h); err != nil {
		t.Fatal(err)
	}
	g1.onMessage(nil, inform("x", 1))
	families, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range families {
		if f.GetName() == "otafleet_mqtt_messages_received_total" {
			for _, m := range f.GetMetric() {
				found = found || m.GetCounter().GetValue() >= 1
			}
		}
	}
	if !found {
		t.Fatal("otafleet_mqtt_messages_received_total not in controller-runtime's registry")
	}
	if !g1.NeedLeaderElection() {
		t.Fatal("by default the gateway runs on the leader only")
	}
}

func TestRateLog(t *testing.T) {
	g := newTestGateway(t, Config{}, HandlerFunc(func(context.Context, []protocol.Message) {}))
	allowed := 0
	for range 100 {
		if ok, _ := g.rejectLog.allow(); ok {
			allowed++
		}
	}
	if allowed > 6 {
		t.Fatalf("%d of 100 log lines let through in a burst, want about 5", allowed)
	}
}
