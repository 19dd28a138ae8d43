package mqtt_test

import (
	"testing"
	"time"

	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/protocol"
	"github.com/otafleet/otafleet/internal/testserver"
)

// TestGatewayWithMosquitto runs the gateway and the simulator against the
// broker real deployments use: informs from both connection modes, an
// upgrade, and junk that is only counted.
func TestGatewayWithMosquitto(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	b, err := testserver.StartMosquitto(ctx, testserver.MosquittoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Stop() })
	rec := newRecorder()
	gw := startGateway(t, b.URL, "operator", rec, nil)

	mux, err := devicesim.Start(ctx, devicesim.Config{Broker: b.URL, ProductKey: pk, Devices: 300, Connections: 2,
		Instant: true, NamePrefix: "mux-"})
	if err != nil {
		t.Fatal(err)
	}
	defer mux.Stop()
	single, err := devicesim.Start(ctx, devicesim.Config{Broker: b.URL, ProductKey: pk, Devices: 5, Mode: devicesim.PerDevice,
		Instant: true, NamePrefix: "one-"})
	if err != nil {
		t.Fatal(err)
	}
	defer single.Stop()
	rec.waitFor(t, "every inform", time.Minute, func(m []protocol.Message) bool { return count(m, protocol.KindInform, "") >= 305 })

	u := protocol.Upgrade{Version: "2.0.0", URL: "http://firmware.invalid/never-fetched-in-instant-mode.bin", Size: 1024,
		MD5: "93230c3bde425a9d7ed2b0a2b3e1a8c1", SignMethod: protocol.SignMD5, Sign: "93230c3bde425a9d7ed2b0a2b3e1a8c1"}
	targets := []string{mux.DeviceNames()[7], single.DeviceNames()[3]}
	for _, dn := range targets {
		if err := gw.PublishUpgrade(ctx, pk, dn, u); err != nil {
			t.Fatal(err)
		}
	}
	dev := rawClient(t, b.URL, "broken-device")
	publish(t, dev, protocol.ProgressTopic(pk, "x"), 1, []byte(`{"params":{"step":"-9"}}`))
	publish(t, dev, protocol.InformTopic(pk, "x"), 0, []byte(`not json`))

	// The gateway does not promise order (paho delivers concurrently), so
	// wait for the reports and the new versions together.
	rec.waitFor(t, "progress and the new versions", time.Minute, func(m []protocol.Message) bool {
		for _, dn := range targets {
			if !hasVersion(m, dn, protocol.DefaultModule, "2.0.0") || count(m, protocol.KindProgress, dn) < 2 {
				return false
			}
		}
		return true
	})
	deadline := time.After(10 * time.Second)
	for gw.Stats().Rejected < 2 {
		select {
		case <-deadline:
			t.Fatalf("stats %+v, want 2 rejected", gw.Stats())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if got := metric(t, gw.reg, "otafleet_mqtt_messages_rejected_total", "reason", "invalid_step"); got != 1 {
		t.Fatalf("rejected{invalid_step} = %v", got)
	}
}
