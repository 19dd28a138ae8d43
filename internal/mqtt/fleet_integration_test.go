package mqtt_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/mqtt"
	"github.com/otafleet/otafleet/internal/protocol"
	"github.com/otafleet/otafleet/internal/testserver"
)

// TestGatewayDecodesSimulatedFleet: every inform of a simulated fleet, in
// both connection modes, reaches the handler decoded.
func TestGatewayDecodesSimulatedFleet(t *testing.T) {
	b := startMochi(t)
	rec := newRecorder()
	gw := startGateway(t, b.URL, "operator", rec, nil)
	ctx := testContext(t, 60*time.Second)
	modules := []devicesim.Module{{Name: "wifi", Version: "1.0.0"}, {Name: "mcu", Version: "app-1.0.0-20191107142256"}}
	mux, err := devicesim.Start(ctx, devicesim.Config{Broker: b.URL, ProductKey: pk, Devices: 500, Connections: 2,
		NamePrefix: "mux-", Modules: modules})
	if err != nil {
		t.Fatal(err)
	}
	defer mux.Stop()
	single, err := devicesim.Start(ctx, devicesim.Config{Broker: b.URL, ProductKey: pk, Devices: 20,
		Mode: devicesim.PerDevice, NamePrefix: "one-", Modules: modules})
	if err != nil {
		t.Fatal(err)
	}
	defer single.Stop()
	msgs := rec.waitFor(t, "all informs", 30*time.Second, func(m []protocol.Message) bool {
		return count(m, protocol.KindInform, "") >= 2*520
	})
	for _, f := range []*devicesim.Fleet{mux, single} {
		for _, dn := range f.DeviceNames() {
			if !hasVersion(msgs, dn, "wifi", "1.0.0") || !hasVersion(msgs, dn, "mcu", "app-1.0.0-20191107142256") {
				t.Fatalf("informs of %s missing", dn)
			}
		}
	}
	for _, m := range msgs {
		if m.ProductKey != pk || m.ID == "" || m.ReceivedAt.IsZero() {
			t.Fatalf("badly decoded message %+v", m)
		}
	}
	if got := metric(t, gw.reg, "otafleet_mqtt_messages_received_total", "kind", "inform"); got != 1040 {
		t.Fatalf("messages_received_total{kind=inform} = %v, want 1040", got)
	}
	if s := gw.Stats(); s.Rejected != 0 || s.Dropped != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestGatewayRefusesGarbage publishes junk on every device topic: it is
// counted by reason and never reaches the handler, and a valid message sent
// after it still does.
func TestGatewayRefusesGarbage(t *testing.T) {
	b := startMochi(t)
	rec := newRecorder()
	gw := startGateway(t, b.URL, "operator", rec, nil)
	dev := rawClient(t, b.URL, "broken-device")
	big := []byte(`{"params":{"version":"1"},"x":"` + strings.Repeat("x", 9000) + `"}`)
	reasons := map[string]int{}
	send := func(topic string, payload []byte, reason protocol.Reason) {
		for _, qos := range []byte{0, 1} {
			publish(t, dev, topic, qos, payload)
			reasons[string(reason)]++
		}
	}
	for _, topic := range []string{
		protocol.InformTopic(pk, "d1"), protocol.ProgressTopic(pk, "d1"),
		protocol.FirmwareGetTopic(pk, "d1"), protocol.RequestTopic(pk, "d1"),
	} {
		send(topic, []byte(`{"id":`), protocol.ReasonInvalidJSON)
		send(topic, []byte("\x00\xff\xfe binary"), protocol.ReasonInvalidJSON)
		send(topic, big, protocol.ReasonTooLarge)
		send(topic, []byte(`[1,2,3]`), protocol.ReasonInvalidSchema)
		send(topic, []byte(`{"id":true,"params":{"version":"1","step":"1"}}`), protocol.ReasonInvalidID)
		send(topic, []byte(`{"id":"1","params":{"version":"1","step":"1","module":"a b"}}`), protocol.ReasonInvalidModule)
	}
	send(protocol.InformTopic(pk, "d1"), []byte(`{"id":"1","params":{"version":"1.0 beta"}}`), protocol.ReasonInvalidVersion)
	send(protocol.ProgressTopic(pk, "d1"), []byte(`{"id":"1","params":{"step":"101"}}`), protocol.ReasonInvalidStep)
	send("/ota/device/inform//d1", []byte(`{"id":"1","params":{"version":"1"}}`), protocol.ReasonInvalidTopic)
	send(protocol.InformTopic(pk, strings.Repeat("d", 200)), []byte(`{"id":"1","params":{"version":"1"}}`), protocol.ReasonInvalidTopic)
	// The backend's own reply coming back on the request topic: ignored.
	u := protocol.Upgrade{Version: "2", URL: "http://x/y", Size: 1, MD5: strings.Repeat("a", 32), SignMethod: protocol.SignMD5, Sign: strings.Repeat("a", 32)}
	own, _ := protocol.EncodeRequestReply(1, &u)
	publish(t, dev, protocol.RequestTopic(pk, "d1"), 1, own)
	// A valid report from the same device still gets through.
	publish(t, dev, protocol.InformTopic(pk, "d1"), 1, []byte(`{"id":3,"params":{"version":"app-1.0.0"}}`))

	total := 0
	for _, n := range reasons {
		total += n
	}
	rec.waitFor(t, "the valid message", 10*time.Second, func(m []protocol.Message) bool { return len(m) > 0 })
	ctx := testContext(t, 10*time.Second)
	for gw.Stats().Rejected < uint64(total) || gw.Stats().Ignored < 1 {
		select {
		case <-ctx.Done():
			t.Fatalf("stats %+v, want %d rejected and 1 ignored", gw.Stats(), total)
		case <-time.After(10 * time.Millisecond): // counters have no change notification; poll with a deadline
		}
	}
	msgs, _ := rec.snapshot()
	if len(msgs) != 1 || msgs[0].Version != "app-1.0.0" {
		t.Fatalf("handler got %+v, want only the valid inform", msgs)
	}
	for reason, n := range reasons {
		if got := metric(t, gw.reg, "otafleet_mqtt_messages_rejected_total", "reason", reason); got != float64(n) {
			t.Errorf("rejected{reason=%s} = %v, want %d", reason, got, n)
		}
	}
	if got := metric(t, gw.reg, "otafleet_mqtt_messages_ignored_total"); got != 1 {
		t.Errorf("ignored = %v, want 1", got)
	}
	if !gw.State().Connected {
		t.Fatal("garbage must not cost the gateway its connection")
	}
}

// TestGatewayReconnectsAfterBrokerRestart stops the broker under a running
// gateway and fleet, starts it again on the same address, and expects both
// to reconnect and traffic to flow again: the gateway subscribes anew (the
// restarted broker forgot every session) and the devices inform again.
func TestGatewayReconnectsAfterBrokerRestart(t *testing.T) {
	b := startMochi(t)
	rec := newRecorder()
	gw := startGateway(t, b.URL, "operator", rec, nil)
	ctx := testContext(t, 90*time.Second)
	fleet, err := devicesim.Start(ctx, devicesim.Config{Broker: b.URL, ProductKey: pk, Devices: 50, Instant: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Stop()
	rec.waitFor(t, "the first informs", 30*time.Second, func(m []protocol.Message) bool { return count(m, protocol.KindInform, "") >= 50 })

	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	waitState(t, gw.Gateway, "disconnected", func(s mqtt.ConnectionState) bool { return !s.Connected })
	if gw.Gateway.Stats().Published != 0 {
		t.Fatal("unexpected publishes")
	}
	err = gw.PublishUpgrade(ctx, pk, fleet.DeviceNames()[0], protocol.Upgrade{})
	if err == nil {
		t.Fatal("publishing an invalid upgrade must fail")
	}
	if err := gw.PublishGetReply(ctx, pk, fleet.DeviceNames()[0], "1", nil); !errors.Is(err, mqtt.ErrNotConnected) {
		t.Fatalf("publish while the broker is down: %v, want ErrNotConnected", err)
	}

	restarted, err := testserver.StartMochi(testserver.MochiOptions{Address: b.Address})
	if err != nil {
		t.Fatal(err)
	}
	defer restarted.Stop()
	waitState(t, gw.Gateway, "reconnected and subscribed", func(s mqtt.ConnectionState) bool { return s.Connects >= 2 && s.Subscribed })
	if got := metric(t, gw.reg, "otafleet_mqtt_connection_lost_total"); got < 1 {
		t.Fatalf("connection_lost_total = %v", got)
	}
	if got := metric(t, gw.reg, "otafleet_mqtt_connected"); got != 1 {
		t.Fatalf("connected = %v", got)
	}
	// The restarted broker knows no subscription: device reports reach the
	// handler again only because the gateway subscribed anew. (Informs the
	// devices sent on reconnecting, before that, are lost with the broker's
	// state; devices inform again on their next connection.)
	dev := rawClient(t, restarted.URL, "late-device")
	publish(t, dev, protocol.InformTopic(pk, "late-device"), 1, []byte(`{"id":"1","params":{"version":"3.0"}}`))
	rec.waitFor(t, "a report after the restart", 30*time.Second, func(m []protocol.Message) bool {
		return hasVersion(m, "late-device", protocol.DefaultModule, "3.0")
	})
	// The fleet reconnected too, and publishing to it works again.
	if err := fleet.Wait(ctx, func(s devicesim.Summary) bool { return s.ConnectionsUp == s.Connections }); err != nil {
		t.Fatal(err)
	}
	if err := gw.PublishGetReply(ctx, pk, fleet.DeviceNames()[0], "1", nil); err != nil {
		t.Fatal(err)
	}
	if err := fleet.Wait(ctx, func(s devicesim.Summary) bool { return s.RepliesReceived == 1 }); err != nil {
		t.Fatal(err)
	}
}

// TestPublisherRefusesInvalidNames guards against topic injection through
// names that come from manifests.
func TestPublisherRefusesInvalidNames(t *testing.T) {
	b := startMochi(t)
	gw := startGateway(t, b.URL, "operator", newRecorder(), nil)
	ctx := context.Background()
	for _, dn := range []string{"", "+", "a/b", "#"} {
		if err := gw.PublishGetReply(ctx, pk, dn, "1", nil); !errors.Is(err, protocol.ErrInvalidTopic) {
			t.Errorf("device name %q: %v, want ErrInvalidTopic", dn, err)
		}
	}
}
