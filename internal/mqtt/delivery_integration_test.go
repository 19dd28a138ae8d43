package mqtt_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/otafleet/otafleet/internal/mqtt"
	"github.com/otafleet/otafleet/internal/protocol"
)

func informPayload(i int) []byte {
	return protocol.Inform{ID: uint32(i), Version: fmt.Sprintf("1.0.%d", i)}.Encode()
}

// TestUnhandledMessagesAreRedelivered: messages the handler had not taken
// when the gateway stopped are not acknowledged, so the broker delivers them
// to the next gateway on the same persistent session.
func TestUnhandledMessagesAreRedelivered(t *testing.T) {
	b := startMochi(t)
	first := newRecorder()
	first.onBatch = func(ctx context.Context, _ []protocol.Message) { <-ctx.Done() } // a handler that never finishes
	gw1 := startGateway(t, b.URL, "operator-session", first, func(c *mqtt.Config) { c.BatchSize = 100 })
	dev := rawClient(t, b.URL, "device")
	const n = 20
	for i := range n {
		publish(t, dev, protocol.InformTopic(pk, "d1"), 1, informPayload(i))
	}
	first.waitFor(t, "the first batch", 10*time.Second, func(m []protocol.Message) bool { return len(m) > 0 })
	gw1.stop()
	if got := gw1.Stats().Handled; got != 0 {
		t.Fatalf("%d messages counted as handled by a handler that never returned", got)
	}

	second := newRecorder()
	startGateway(t, b.URL, "operator-session", second, nil)
	msgs := second.waitFor(t, "every message again", 20*time.Second, func(m []protocol.Message) bool {
		seen := map[string]bool{}
		for _, x := range m {
			seen[x.Version] = true
		}
		return len(seen) == n
	})
	if len(msgs) < n {
		t.Fatalf("redelivered %d, want %d", len(msgs), n)
	}
}

// TestBackpressureLosesNoQoS1Message runs a tiny queue against a blocked
// handler: QoS 1 messages wait (and are counted as waits), none is dropped,
// and all arrive once the handler resumes. QoS 0 messages beyond the queue
// are dropped and counted.
func TestBackpressureLosesNoQoS1Message(t *testing.T) {
	b := startMochi(t)
	gate := make(chan struct{})
	var once sync.Once
	rec := newRecorder()
	rec.onBatch = func(ctx context.Context, _ []protocol.Message) {
		select {
		case <-gate:
		case <-ctx.Done():
		}
	}
	gw := startGateway(t, b.URL, "operator", rec, func(c *mqtt.Config) { c.QueueSize, c.BatchSize = 4, 2 })
	defer once.Do(func() { close(gate) })
	dev := rawClient(t, b.URL, "device")
	const n = 60
	for i := range n {
		publish(t, dev, protocol.InformTopic(pk, "d1"), 1, informPayload(i))
	}
	ctx := testContext(t, 20*time.Second)
	for metric(t, gw.reg, "otafleet_mqtt_queue_full_waits_total") == 0 {
		select {
		case <-ctx.Done():
			t.Fatal("the queue never filled up")
		case <-time.After(5 * time.Millisecond):
		}
	}
	once.Do(func() { close(gate) })
	rec.waitFor(t, "every QoS 1 message", 20*time.Second, func(m []protocol.Message) bool { return len(m) == n })
	if s := gw.Stats(); s.Dropped != 0 {
		t.Fatalf("QoS 1 messages dropped: %+v", s)
	}

	// Now QoS 0 against a blocked handler: the excess is dropped, counted.
	gate2 := make(chan struct{})
	blocked := newRecorder()
	blocked.onBatch = func(ctx context.Context, _ []protocol.Message) {
		select {
		case <-gate2:
		case <-ctx.Done():
		}
	}
	gw2 := startGateway(t, b.URL, "operator-qos0", blocked, func(c *mqtt.Config) {
		c.QueueSize, c.BatchSize, c.ProductKeys = 4, 1, []string{"qos0"}
	})
	for i := range n {
		publish(t, dev, protocol.InformTopic("qos0", "d1"), 0, informPayload(i))
	}
	for gw2.Stats().Received < n {
		select {
		case <-ctx.Done():
			t.Fatalf("received %d of %d QoS 0 messages", gw2.Stats().Received, n)
		case <-time.After(5 * time.Millisecond):
		}
	}
	close(gate2)
	s := gw2.Stats()
	if s.Dropped == 0 || metric(t, gw2.reg, "otafleet_mqtt_messages_dropped_total") != float64(s.Dropped) {
		t.Fatalf("want QoS 0 drops counted, stats %+v", s)
	}
	blocked.waitFor(t, "the QoS 0 messages that fit", 10*time.Second, func(m []protocol.Message) bool {
		return uint64(len(m)) == n-s.Dropped
	})
}

// TestProductGatewaysGetOnlyTheirProduct runs the gateways of two
// products' owners, as replicas owning products by Lease do: each message
// reaches the owner of its product, and only it.
func TestProductGatewaysGetOnlyTheirProduct(t *testing.T) {
	b := startMochi(t)
	r1, r2 := newRecorder(), newRecorder()
	startGateway(t, b.URL, "otafleet-pkA", r1, func(c *mqtt.Config) { c.ProductKeys = []string{"pkA"} })
	startGateway(t, b.URL, "otafleet-pkB", r2, func(c *mqtt.Config) { c.ProductKeys = []string{"pkB"} })
	dev := rawClient(t, b.URL, "device")
	const n = 200
	for i := range n {
		publish(t, dev, protocol.InformTopic([]string{"pkA", "pkB"}[i%2], fmt.Sprintf("d%d", i)), 1, informPayload(i))
	}
	total := func() int {
		a, _ := r1.snapshot()
		c, _ := r2.snapshot()
		return len(a) + len(c)
	}
	ctx := testContext(t, 20*time.Second)
	for total() < n {
		select {
		case <-ctx.Done():
			t.Fatalf("received %d of %d", total(), n)
		case <-time.After(5 * time.Millisecond):
		}
	}
	for want, r := range map[string]*recorder{"pkA": r1, "pkB": r2} {
		got, _ := r.snapshot()
		if len(got) != n/2 {
			t.Errorf("the owner of %s got %d messages, want %d", want, len(got), n/2)
		}
		for _, m := range got {
			if m.ProductKey != want {
				t.Errorf("the owner of %s got a message of %s (device %s)", want, m.ProductKey, m.DeviceName)
			}
		}
	}
}
