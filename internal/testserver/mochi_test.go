package testserver

import (
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// roundTrip connects to url, subscribes, publishes and waits for the echo.
func roundTrip(t *testing.T, url string) {
	t.Helper()
	got := make(chan string, 1)
	opts := paho.NewClientOptions().AddBroker(url).SetClientID("rt-" + t.Name()).SetConnectTimeout(5 * time.Second)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", url, tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Subscribe("/ota/device/inform/+/+", 1, func(_ paho.Client, m paho.Message) {
		got <- string(m.Payload())
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	if tok := c.Publish("/ota/device/inform/pk/dn", 1, false, "hello"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	select {
	case m := <-got:
		if m != "hello" {
			t.Fatalf("got %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("message not delivered")
	}
}

func TestMochiRestartOnSameAddress(t *testing.T) {
	b, err := StartMochi(MochiOptions{})
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, b.URL)
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	again, err := StartMochi(MochiOptions{Address: b.Address})
	if err != nil {
		t.Fatalf("restart on %s: %v", b.Address, err)
	}
	defer again.Stop()
	if again.Address != b.Address {
		t.Fatalf("restarted on %s, want %s", again.Address, b.Address)
	}
	roundTrip(t, again.URL)
}
