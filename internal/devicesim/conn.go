package devicesim

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/otafleet/otafleet/internal/mqtt"
	"github.com/otafleet/otafleet/internal/protocol"
)

// conn is one MQTT connection and the devices it carries.
type conn struct {
	f       *Fleet
	id      string
	client  paho.Client
	devices map[string]*device

	readyOnce sync.Once
	ready     chan struct{} // closed after the first successful subscription
	up        atomic.Bool   // connected and subscribed
}

// subscribeChunk bounds the filters per SUBSCRIBE packet (about 50 bytes
// each), well under any broker's packet limit.
const subscribeChunk = 1000

func newConn(f *Fleet, id, username string) *conn {
	c := &conn{f: f, id: id, devices: map[string]*device{}, ready: make(chan struct{})}
	cfg := &f.cfg
	o := paho.NewClientOptions().AddBroker(cfg.Broker).
		SetClientID(id).
		SetUsername(username).
		SetPassword(cfg.Password).
		SetProtocolVersion(4).
		SetCleanSession(true). // like the vendor SDK: subscriptions are made again on connect
		SetAutoReconnect(true).
		SetMaxReconnectInterval(5 * time.Second).
		SetConnectTimeout(30 * time.Second).
		SetKeepAlive(60 * time.Second).
		SetWriteTimeout(cfg.PublishTimeout).
		SetDefaultPublishHandler(c.onMessage).
		SetOnConnectHandler(func(paho.Client) { go c.onConnect() }).
		SetConnectionLostHandler(func(paho.Client, error) { c.setUp(false) })
	if cfg.TLS != nil {
		o.SetTLSConfig(cfg.TLS)
	}
	mqtt.UseBufferedConnections(o) // thousands of devices share a connection
	c.client = paho.NewClient(o)
	return c
}

// connect makes the first connection; paho reconnects by itself later.
func (c *conn) connect(ctx context.Context) error {
	tok := c.client.Connect()
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("connect %s: %w", c.id, err)
		}
	case <-ctx.Done():
		return fmt.Errorf("connect %s: %w", c.id, ctx.Err())
	}
	select {
	case <-c.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("subscribe %s: %w", c.id, ctx.Err())
	}
}

// onConnect subscribes to the devices' topics and informs their versions,
// as devices do on every connection.
func (c *conn) onConnect() {
	if err := c.subscribe(); err != nil {
		c.f.cfg.Logger.Error(err, "Subscribing failed", "client", c.id)
		return // paho reconnects on a broken link; a refused subscription is fatal for this connection
	}
	c.setUp(true)
	c.readyOnce.Do(func() { close(c.ready) })
	c.boot()
}

// setUp records whether the connection is usable, for Summary.ConnectionsUp.
func (c *conn) setUp(up bool) {
	if c.up.Swap(up) == up {
		return
	}
	delta := 1
	if !up {
		delta = -1
	}
	c.f.update(func(s *state) { s.connsUp += delta })
}

func (c *conn) filters() []string {
	cfg := &c.f.cfg
	if cfg.Profile == ProfileSDK4 {
		return nil // 4.x never subscribes: the broker subscribes it on connect
	}
	if len(c.devices) > 1 && cfg.WildcardSubscriptions {
		return deviceFilters(cfg, "+")
	}
	var out []string
	for name := range c.devices {
		out = append(out, deviceFilters(cfg, name)...)
	}
	return out
}

func deviceFilters(cfg *Config, dn string) []string {
	out := []string{protocol.UpgradeTopic(cfg.ProductKey, dn), protocol.FirmwareGetReplyTopic(cfg.ProductKey, dn)}
	if cfg.LegacyRequest {
		out = append(out, protocol.RequestTopic(cfg.ProductKey, dn))
	}
	return out
}

func (c *conn) subscribe() error {
	all := c.filters()
	for start := 0; start < len(all); start += subscribeChunk {
		chunk := make(map[string]byte)
		for _, f := range all[start:min(start+subscribeChunk, len(all))] {
			chunk[f] = 1
		}
		tok := c.client.SubscribeMultiple(chunk, nil)
		if !tok.WaitTimeout(c.f.cfg.PublishTimeout) {
			return errors.New("subscribe timed out")
		}
		if err := tok.Error(); err != nil {
			return err
		}
	}
	return nil
}

// boot informs every online device's modules, pipelining the publishes
// (a window of outstanding QoS 1 tokens) rather than waiting for each.
func (c *conn) boot() {
	f := c.f
	type pending struct {
		d    *device
		last bool // the device's last boot message
		tok  paho.Token
	}
	const window = 1000
	queue := make([]pending, 0, window)
	failed := map[*device]bool{}
	settle := func(p pending) {
		if err := f.waitToken(p.tok); err != nil {
			failed[p.d] = true
		}
		if p.last && !failed[p.d] {
			p.d.markInformed()
		}
	}
	for _, d := range c.devices {
		msgs := d.bootMessages()
		for i, m := range msgs {
			if len(queue) == window {
				settle(queue[0])
				queue = queue[1:]
			}
			queue = append(queue, pending{d: d, last: i == len(msgs)-1, tok: c.client.Publish(m.topic, 1, false, m.payload)})
		}
	}
	for _, p := range queue {
		settle(p)
	}
}

// disconnect closes the connection and waits until paho has finished, so
// that a following Connect is not taken for a no-op on a live client.
// paho's Disconnect returns after its quiesce time even if it has not
// finished, and exposes no completion signal: poll, with a deadline.
func (c *conn) disconnect(ctx context.Context) {
	c.client.Disconnect(100)
	c.setUp(false) // an explicit disconnect is not reported as lost
	deadline := time.Now().Add(10 * time.Second)
	for c.client.IsConnected() && time.Now().Before(deadline) && sleep(ctx, 5*time.Millisecond) {
	}
}

// publish sends one QoS 1 message and waits for the broker's PUBACK.
func (c *conn) publish(topic string, payload []byte) error {
	return c.f.waitToken(c.client.Publish(topic, 1, false, payload))
}

// onMessage routes a cloud → device message to the device it addresses.
// It runs on paho's router goroutine, so anything slow happens elsewhere.
func (c *conn) onMessage(_ paho.Client, m paho.Message) {
	f := c.f
	kind, pk, dn, err := protocol.ParseTopic(m.Topic())
	d := c.devices[dn]
	if err != nil || pk != f.cfg.ProductKey || d == nil {
		return // with wildcard subscriptions: another connection's device
	}
	var u *protocol.Upgrade
	switch {
	case f.cfg.Profile == ProfileSDK4:
		if u, err = f.read4(kind, m.Payload()); err != nil {
			f.violation(dn, ViolationPushUnreadable, err.Error())
			return // dropped silently, as 4.x does
		}
	case kind == protocol.KindUpgrade:
		var push protocol.Upgrade
		if _, push, err = protocol.DecodePush(m.Payload()); err == nil {
			u = &push
			f.add(&f.count.pushes, 1)
		}
	case kind == protocol.KindFirmwareGetReply:
		_, u, err = protocol.DecodeGetReply(m.Payload())
		f.add(&f.count.replies, 1)
	case kind == protocol.KindRequest:
		if _, u, err = protocol.DecodeRequestReply(m.Payload()); errors.Is(err, protocol.ErrNotReply) {
			return // our own request, echoed because we subscribe to the topic
		}
		f.add(&f.count.replies, 1)
	default:
		return
	}
	if err != nil {
		f.add(&f.count.invalid, 1)
		f.cfg.Logger.Info("Device refused a message the operator sent", "device", dn, "topic", m.Topic(), "error", err.Error())
		return
	}
	if u != nil {
		d.onUpgrade(*u)
	}
}

// read4 reads a push or a firmware/get reply with LinkSDK 4.x's naive
// reader; a reply with an empty data object means nothing is pending.
func (f *Fleet) read4(kind protocol.Kind, payload []byte) (*protocol.Upgrade, error) {
	switch kind {
	case protocol.KindUpgrade:
		f.add(&f.count.pushes, 1)
	case protocol.KindFirmwareGetReply:
		f.add(&f.count.replies, 1)
		if _, u, err := protocol.DecodeGetReply(payload); err == nil && u == nil {
			return nil, nil
		}
	default:
		return nil, nil // 4.x registers handlers for these two topics only
	}
	u, err := scanPush4(payload)
	if err != nil {
		return nil, err
	}
	return &u, nil
}
