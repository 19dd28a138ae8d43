package testserver

import (
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/otafleet/otafleet/internal/protocol"
)

func TestDeviceFromUsername(t *testing.T) {
	for _, c := range []struct {
		in     string
		dn, pk string
		ok     bool
	}{
		{"dev-1&a1Prod", "dev-1", "a1Prod", true},
		{"dev-1", "", "", false},
		{"&a1Prod", "", "", false},
		{"dev-1&", "", "", false},
		{"dev-1&a1&x", "", "", false},
		{"dev/1&a1Prod", "", "", false},
		{"dev-1&a1+", "", "", false},
	} {
		dn, pk, ok := DeviceFromUsername([]byte(c.in))
		if dn != c.dn || pk != c.pk || ok != c.ok {
			t.Errorf("DeviceFromUsername(%q) = %q, %q, %v; want %q, %q, %v", c.in, dn, pk, ok, c.dn, c.pk, c.ok)
		}
	}
}

// silentClient connects with a user name and subscribes to nothing; what
// it receives arrives on got.
func silentClient(t *testing.T, url, id, username string, got chan<- string) {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetUsername(username).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { got <- m.Topic() })
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(50) })
}

func TestAutoSubscribeOTA(t *testing.T) {
	b, err := StartMochi(MochiOptions{AutoSubscribeOTA: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	device, other := make(chan string, 8), make(chan string, 8)
	silentClient(t, b.URL, "dev", "dev-1&a1Prod", device)
	silentClient(t, b.URL, "other", "operator", other)
	o := paho.NewClientOptions().AddBroker(b.URL).SetClientID("publisher")
	p := paho.NewClient(o)
	if tok := p.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer p.Disconnect(50)
	want := []string{protocol.UpgradeTopic("a1Prod", "dev-1"), protocol.FirmwareGetReplyTopic("a1Prod", "dev-1")}
	// Another device's push comes first: it must not arrive.
	for _, topic := range append([]string{protocol.UpgradeTopic("a1Prod", "dev-2")}, want...) {
		if tok := p.Publish(topic, 1, false, "{}"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	for _, w := range want {
		select {
		case topic := <-device:
			if topic != w {
				t.Fatalf("device received %q, want %q", topic, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("device never received %s", w)
		}
	}
	// Only the device's connection was subscribed.
	for _, w := range want {
		subs := b.Server().Topics.Subscribers(w).Subscriptions
		if _, ok := subs["dev"]; !ok || len(subs) != 1 {
			t.Fatalf("subscribers of %s: %v, want only the device", w, subs)
		}
	}
	if len(other) != 0 {
		t.Fatalf("a client without a device user name received %d messages", len(other))
	}
}
