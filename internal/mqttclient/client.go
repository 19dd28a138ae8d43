// Package mqttclient is a minimal MQTT 3.1.1 client made for connections
// that carry thousands of simulated devices. One goroutine reads a
// connection and hands every message to a callback, one writes it, and a
// publish costs an append to a shared buffer and a wait for its PUBACK: no
// goroutine, channel hand-off or copy per message, which is what made a
// general client (paho) cost the simulator more CPU than the broker it
// talked to. It does what the simulated devices need and no more: QoS 1
// publishes, QoS 1 subscriptions, clean sessions, keep-alive, and
// reconnecting by itself until told to disconnect.
package mqttclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/otafleet/otafleet/internal/mqttpacket"
)

// Errors a publish or subscribe can end with.
var (
	ErrNotConnected   = errors.New("mqttclient: not connected")
	ErrConnectionLost = errors.New("mqttclient: connection lost before the acknowledgement")
	ErrTimeout        = errors.New("mqttclient: no acknowledgement in time")
	ErrRefused        = errors.New("mqttclient: subscription refused")
)

// Options configure a Client. Broker and ClientID are required.
type Options struct {
	// Broker is tcp://host:port or ssl://host:port (mqtt://, tls://,
	// mqtts:// and tcps:// too); user information in it overrides Username
	// and Password, as in paho.
	Broker   string
	ClientID string
	// Username is sent when not empty; Password only with a user name, as
	// MQTT 3.1.1 requires.
	Username, Password string
	TLS                *tls.Config
	// KeepAlive is the keep-alive interval; default 60 s.
	KeepAlive time.Duration
	// ConnectTimeout bounds a connection attempt; default 30 s.
	ConnectTimeout time.Duration
	// AckTimeout bounds the wait for a PUBACK or SUBACK; default 30 s.
	AckTimeout time.Duration
	// MaxReconnectInterval caps the back-off between reconnection
	// attempts; default 5 s.
	MaxReconnectInterval time.Duration
	// OnMessage receives every message, on the connection's reader
	// goroutine: it must return quickly and must not wait for this client
	// (a Publish from it would wait for a PUBACK that only the reader can
	// read). topic and payload are valid only during the call.
	OnMessage func(topic, payload []byte)
	// OnConnect runs on a goroutine of its own after every successful
	// connection, typically to subscribe.
	OnConnect func()
	// OnConnectionLost runs when a connection breaks, but not after
	// Disconnect.
	OnConnectionLost func(error)
}

func (o *Options) setDefaults() {
	if o.KeepAlive == 0 {
		o.KeepAlive = 60 * time.Second
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 30 * time.Second
	}
	if o.AckTimeout == 0 {
		o.AckTimeout = 30 * time.Second
	}
	if o.MaxReconnectInterval == 0 {
		o.MaxReconnectInterval = 5 * time.Second
	}
	if o.OnMessage == nil {
		o.OnMessage = func(_, _ []byte) {}
	}
}

// Client is one MQTT connection, made again whenever it breaks until
// Disconnect.
type Client struct {
	o       Options
	network string // "tcp" or "tls"
	addr    string

	life sync.Mutex // serializes Connect and Disconnect
	stop chan struct{}
	done chan struct{} // closed when the run loop has ended

	mu  sync.Mutex
	cur *session // nil while not connected
}

// New checks the options and returns a client that is not connected yet.
func New(o Options) (*Client, error) {
	o.setDefaults()
	u, err := url.Parse(o.Broker)
	if err != nil {
		return nil, fmt.Errorf("mqttclient: broker URL: %w", err)
	}
	c := &Client{o: o, addr: u.Host}
	switch u.Scheme {
	case "tcp", "mqtt":
		c.network = "tcp"
	case "ssl", "tls", "mqtts", "tcps":
		c.network = "tls"
	default:
		return nil, fmt.Errorf("mqttclient: broker URL scheme %q is not supported", u.Scheme)
	}
	if u.User != nil {
		c.o.Username = u.User.Username()
		if p, ok := u.User.Password(); ok {
			c.o.Password = p
		}
	}
	return c, nil
}

// Connect makes the first connection and returns its error; once
// connected, the client reconnects by itself whenever the connection
// breaks, until Disconnect. Connecting a connected client does nothing.
func (c *Client) Connect(ctx context.Context) error {
	c.life.Lock()
	defer c.life.Unlock()
	if c.stop != nil {
		return nil
	}
	s, err := c.dial(ctx)
	if err != nil {
		return err
	}
	c.stop, c.done = make(chan struct{}), make(chan struct{})
	c.attach(s)
	go c.run(s, c.stop, c.done)
	return nil
}

// Disconnect sends DISCONNECT, closes the connection, stops reconnecting
// and returns once the connection's goroutines have ended: a following
// Connect starts afresh.
func (c *Client) Disconnect() {
	c.life.Lock()
	defer c.life.Unlock()
	if c.stop == nil {
		return
	}
	close(c.stop)
	if s := c.session(); s != nil {
		s.close(true)
	}
	<-c.done
	c.stop, c.done = nil, nil
}

// IsConnected reports whether a connection is up.
func (c *Client) IsConnected() bool { return c.session() != nil }

func (c *Client) session() *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

// run serves connections until stop: it reads the current one on this
// goroutine and, when it breaks, dials again with a growing back-off.
func (c *Client) run(s *session, stop, done chan struct{}) {
	defer close(done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-done:
		}
	}()
	var delay time.Duration
	for {
		began := time.Now()
		err := c.serve(s)
		select {
		case <-stop:
			return
		default:
		}
		if c.o.OnConnectionLost != nil {
			c.o.OnConnectionLost(err)
		}
		if time.Since(began) > 10*time.Second {
			delay = 0 // a connection that held: try again at once
		}
		if s = c.redial(ctx, &delay); s == nil {
			return
		}
		c.attach(s)
		select {
		case <-stop: // Disconnect found no session to close: close this one
			s.close(true)
		default:
		}
	}
}

// attach makes s the current session, so that publishes go to it, and
// starts its writer and OnConnect.
func (c *Client) attach(s *session) {
	c.mu.Lock()
	c.cur = s
	c.mu.Unlock()
	go s.writeLoop()
	if c.o.OnConnect != nil {
		go c.o.OnConnect()
	}
}

// serve reads an attached session to its end and returns why it ended.
func (c *Client) serve(s *session) error {
	err := s.readLoop()
	c.mu.Lock()
	c.cur = nil
	c.mu.Unlock()
	s.close(false)
	<-s.writerDone
	return err
}

// redial dials until it succeeds or ctx ends (nil), sleeping delay, which
// doubles from 1 s up to MaxReconnectInterval, before every attempt.
func (c *Client) redial(ctx context.Context, delay *time.Duration) *session {
	for {
		t := time.NewTimer(*delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil
		}
		*delay = min(max(2**delay, time.Second), c.o.MaxReconnectInterval)
		if s, err := c.dial(ctx); err == nil {
			return s
		}
	}
}

// dial opens a network connection and makes the MQTT handshake.
func (c *Client) dial(ctx context.Context) (*session, error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.ConnectTimeout)
	defer cancel()
	var nc net.Conn
	var err error
	d := &net.Dialer{}
	if c.network == "tls" {
		nc, err = (&tls.Dialer{NetDialer: d, Config: c.o.TLS}).DialContext(ctx, "tcp", c.addr)
	} else {
		nc, err = d.DialContext(ctx, "tcp", c.addr)
	}
	if err != nil {
		return nil, fmt.Errorf("mqttclient: connect %s: %w", c.o.ClientID, err)
	}
	s := newSession(c, nc)
	if err := s.handshake(ctx); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("mqttclient: connect %s: %w", c.o.ClientID, err)
	}
	return s, nil
}

// Token is a publish or subscribe in flight.
type Token struct {
	w   *waiter
	err error // set when it could not even be sent
}

// Wait waits for the acknowledgement, the connection's loss, AckTimeout
// or ctx, whichever comes first.
func (t Token) Wait(ctx context.Context) error {
	if t.err != nil {
		return t.err
	}
	select {
	case err := <-t.w.done:
		putWaiter(t.w)
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Publish sends a QoS 1 message and returns at once; Wait on the token
// for the broker's PUBACK.
func (c *Client) Publish(topic string, payload []byte) Token {
	s := c.session()
	if s == nil {
		return Token{err: ErrNotConnected}
	}
	w, err := s.send(func(b []byte, id uint16) ([]byte, error) {
		return mqttpacket.AppendPublish(b, topic, payload, 1, id)
	})
	return Token{w: w, err: err}
}

// Subscribe asks for filters at QoS 1 in one SUBSCRIBE; Wait on the token
// for the SUBACK, which fails with ErrRefused if the broker refused any.
func (c *Client) Subscribe(filters []string) Token {
	s := c.session()
	if s == nil {
		return Token{err: ErrNotConnected}
	}
	w, err := s.send(func(b []byte, id uint16) ([]byte, error) {
		return mqttpacket.AppendSubscribe(b, id, filters, 1)
	})
	return Token{w: w, err: err}
}
