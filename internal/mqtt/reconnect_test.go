package mqtt_test

import (
	"testing"
	"time"

	"github.com/otafleet/otafleet/internal/mqtt"
	"github.com/otafleet/otafleet/internal/testserver"
)

// TestGatewayReconnectsPromptlyAfterRepeatedBrokerRestarts restarts the
// broker five times in a row under a gateway on the default settings.
// paho doubles its reconnection delay while connections keep being lost
// soon after they came up, up to MaxReconnectInterval; with 30 s the
// gateway stayed away 30 s after a few restarts (found by the chaos
// harness), and a broker without persistence drops every device report
// sent while no session subscribes to it.
func TestGatewayReconnectsPromptlyAfterRepeatedBrokerRestarts(t *testing.T) {
	b := startMochi(t)
	gw := startGateway(t, b.URL, "restarts", newRecorder(), func(c *mqtt.Config) { c.MaxReconnectInterval = 0 })
	for i := 1; i <= 5; i++ {
		if err := b.Stop(); err != nil {
			t.Fatal(err)
		}
		waitState(t, gw.Gateway, "disconnected", func(s mqtt.ConnectionState) bool { return !s.Connected })
		var err error
		if b, err = testserver.StartMochi(testserver.MochiOptions{Address: b.Address}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Stop() })
		up := time.Now()
		waitState(t, gw.Gateway, "subscribed again", func(s mqtt.ConnectionState) bool { return s.Connects > uint64(i) && s.Subscribed })
		// paho's first delay is 1 s, then 2, 4, 8...: capped at 5 s, the
		// fifth restart costs 5 s, not 8.
		if took := time.Since(up); took > 7*time.Second {
			t.Fatalf("restart %d: the gateway came back %s after the broker", i, took.Round(time.Millisecond))
		}
	}
}
