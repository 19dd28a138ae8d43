package devicesim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/otafleet/otafleet/internal/mqttclient"
	"github.com/otafleet/otafleet/internal/protocol"
)

// conn is one MQTT connection and the devices it carries. Its client's
// reader goroutine receives and routes every message of every device on
// it; devices publish through the client's shared write buffer.
type conn struct {
	f       *Fleet
	id      string
	client  *mqttclient.Client
	devices map[string]*device

	readyOnce sync.Once
	ready     chan struct{} // closed after the first successful subscription
	up        atomic.Bool   // connected and subscribed
}

// subscribeChunk bounds the filters per SUBSCRIBE packet (about 50 bytes
// each), well under any broker's packet limit.
const subscribeChunk = 1000

func newConn(f *Fleet, id, username string) (*conn, error) {
	c := &conn{f: f, id: id, devices: map[string]*device{}, ready: make(chan struct{})}
	cfg := &f.cfg
	client, err := mqttclient.New(mqttclient.Options{
		Broker: cfg.Broker, ClientID: id, Username: username, Password: cfg.Password, TLS: cfg.TLS,
		AckTimeout: cfg.PublishTimeout,
		OnMessage:  c.onMessage,
		// Clean sessions, like the vendor SDK: subscriptions are made again
		// on every connect.
		OnConnect:        c.onConnect,
		OnConnectionLost: func(error) { c.setUp(false) },
	})
	if err != nil {
		return nil, err
	}
	c.client = client
	return c, nil
}

// connect makes the first connection (the client reconnects by itself
// later) and waits for its subscriptions.
func (c *conn) connect(ctx context.Context) error {
	if err := c.client.Connect(ctx); err != nil {
		return fmt.Errorf("connect %s: %w", c.id, err)
	}
	select {
	case <-c.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("subscribe %s: %w", c.id, ctx.Err())
	}
}

// reconnect connects a connection that disconnect took down, as a device
// coming back does; its onConnect subscribes and informs.
func (c *conn) reconnect(ctx context.Context) {
	if err := c.client.Connect(ctx); err != nil {
		c.f.cfg.Logger.Error(err, "Reconnecting failed", "client", c.id)
	}
}

// onConnect subscribes to the devices' topics and informs their versions,
// as devices do on every connection.
func (c *conn) onConnect() {
	if err := c.subscribe(); err != nil {
		c.f.cfg.Logger.Error(err, "Subscribing failed", "client", c.id)
		return // a broken link is made again; a refused subscription is fatal for this connection
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
		if err := c.client.Subscribe(all[start:min(start+subscribeChunk, len(all))]).Wait(c.f.ctx); err != nil {
			return err
		}
	}
	return nil
}

// boot informs every online device's modules, pipelining the publishes
// (a window of outstanding QoS 1 messages) rather than waiting for each.
func (c *conn) boot() {
	f := c.f
	type pending struct {
		d    *device
		last bool // the device's last boot message
		tok  mqttclient.Token
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
			queue = append(queue, pending{d: d, last: i == len(msgs)-1, tok: c.client.Publish(m.topic, m.payload)})
		}
	}
	for _, p := range queue {
		settle(p)
	}
}

// disconnect closes the connection and returns once the client has
// finished, so that reconnect starts afresh.
func (c *conn) disconnect(context.Context) {
	c.client.Disconnect()
	c.setUp(false) // an explicit disconnect is not reported as lost
}

// publish sends one QoS 1 message and waits for the broker's PUBACK.
func (c *conn) publish(topic string, payload []byte) error {
	return c.f.waitToken(c.client.Publish(topic, payload))
}

// onMessage routes a cloud → device message to the device it addresses.
// It runs on the connection's reader goroutine, so anything slow happens
// elsewhere, and its arguments alias the reader's buffer.
func (c *conn) onMessage(topic, payload []byte) {
	d := c.device(topicDevice(topic))
	if d == nil {
		return // with wildcard subscriptions: another connection's device
	}
	f := c.f
	kind, pk, dn, err := protocol.ParseTopic(string(topic))
	if err != nil || pk != f.cfg.ProductKey || dn != d.name {
		return
	}
	var u *protocol.Upgrade
	switch {
	case f.cfg.Profile == ProfileSDK4:
		if u, err = f.read4(kind, payload); err != nil {
			f.violation(dn, ViolationPushUnreadable, err.Error())
			return // dropped silently, as 4.x does
		}
	case kind == protocol.KindUpgrade:
		var push protocol.Upgrade
		if _, push, err = protocol.DecodePush(payload); err == nil {
			u = &push
			f.add(&f.count.pushes, 1)
		}
	case kind == protocol.KindFirmwareGetReply:
		_, u, err = protocol.DecodeGetReply(payload)
		f.add(&f.count.replies, 1)
	case kind == protocol.KindRequest:
		if _, u, err = protocol.DecodeRequestReply(payload); errors.Is(err, protocol.ErrNotReply) {
			return // our own request, echoed because we subscribe to the topic
		}
		f.add(&f.count.replies, 1)
	default:
		return
	}
	if err != nil {
		f.add(&f.count.invalid, 1)
		f.cfg.Logger.Info("Device refused a message the operator sent", "device", dn, "topic", string(topic), "error", err.Error())
		return
	}
	if u != nil {
		d.onUpgrade(*u)
	}
}

// device returns this connection's device that dn names, or nil. A name
// is the prefix and an index, and device i rides on connection i modulo
// their number: the index tells whether the device is this connection's
// without a map lookup, which with wildcard subscriptions every connection
// would make for every push to the fleet.
func (c *conn) device(dn []byte) *device {
	f := c.f
	prefix := f.cfg.NamePrefix
	if len(dn) <= len(prefix) || len(dn) > len(prefix)+9 || string(dn[:len(prefix)]) != prefix {
		return nil
	}
	i := 0
	for _, ch := range dn[len(prefix):] {
		if ch < '0' || ch > '9' {
			return nil
		}
		i = i*10 + int(ch-'0')
	}
	if i >= len(f.devices) || f.conns[i%len(f.conns)] != c || f.devices[i].name != string(dn) {
		return nil
	}
	return f.devices[i]
}

// topicDevice returns the segment of a cloud → device topic that names
// the device: the third of /sys/{pk}/{dn}/..., else the last. Finding the
// device by it lets a connection discard another connection's pushes
// (wildcard subscriptions) without parsing them or allocating.
func topicDevice(topic []byte) []byte {
	if rest, ok := bytes.CutPrefix(topic, []byte("/sys/")); ok {
		if _, rest, ok = bytes.Cut(rest, []byte("/")); ok {
			dn, _, _ := bytes.Cut(rest, []byte("/"))
			return dn
		}
		return nil
	}
	return topic[bytes.LastIndexByte(topic, '/')+1:]
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
