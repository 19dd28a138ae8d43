package mqtt

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/otafleet/otafleet/internal/protocol"
)

// Handler receives decoded device messages. HandleBatch is called from one
// goroutine at a time, in the order messages left the queue (which is not
// necessarily the order devices sent them: the broker and paho may reorder).
// The slice is reused after the call returns: copy what you keep.
// HandleBatch should apply the batch to in-memory state and return quickly.
// It returns nil when the batch may be acknowledged at once, or a function
// that blocks until the batch's effect is durable: its messages are
// acknowledged once it returned nil, meanwhile the gateway goes on with
// the next batches.
type Handler interface {
	HandleBatch(ctx context.Context, msgs []protocol.Message) (durable func(context.Context) error)
}

// HandlerFunc adapts a function to Handler; its batches are acknowledged
// as soon as it returns.
type HandlerFunc func(ctx context.Context, msgs []protocol.Message)

// HandleBatch calls f.
func (f HandlerFunc) HandleBatch(ctx context.Context, msgs []protocol.Message) func(context.Context) error {
	f(ctx, msgs)
	return nil
}

// ConnectionState is a snapshot of the gateway's link to the broker.
type ConnectionState struct {
	// Connected is true while the MQTT connection is up.
	Connected bool
	// Subscribed is true once every filter was subscribed on the current
	// connection.
	Subscribed bool
	// Connects counts successful connections, reconnections included.
	Connects uint64
}

// Stats are running totals, for benchmarks and tests; the same numbers are
// exported as metrics.
type Stats struct {
	Received, Rejected, Ignored, Dropped, Handled, Published, PublishFailed uint64
}

// Gateway owns the broker connection. Create it with New and run it with
// Start, from a manager (it is a manager.Runnable) or from a goroutine.
type Gateway struct {
	cfg     Config
	handler Handler
	client  paho.Client
	metrics *metrics
	queue   chan queued
	done    chan struct{} // closed when Start returns: waiting producers give up
	started atomic.Bool
	log     atomic.Pointer[logr.Logger]
	pushID  atomic.Int64
	// StayFor, when set, keeps the connection open after ingest stopped
	// until it is closed (30 s at most): the engine's last pushes still go
	// out, and a push cut off mid-flight would be sent twice by the next
	// leader. Unacknowledged device reports stay queued in the session.
	StayFor <-chan struct{}

	mu      sync.Mutex
	state   ConnectionState
	changed chan struct{} // closed and replaced on every state change
	connGen uint64        // identifies the connection an OnConnect runs for
	counted bool          // counted in the connected gauge

	rejectLog rateLog
	stats     struct{ received, rejected, ignored, dropped, handled, published, publishFailed atomic.Uint64 }
}

// queued is a decoded message with the paho message to acknowledge.
type queued struct {
	msg protocol.Message
	ack paho.Message
}

// New checks cfg and prepares a gateway; nothing connects until Start.
func New(cfg Config, h Handler) (*Gateway, error) {
	if h == nil {
		return nil, errors.New("mqtt: nil handler")
	}
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("mqtt: %w", err)
	}
	g := &Gateway{
		cfg: cfg, handler: h,
		queue:     make(chan queued, cfg.QueueSize),
		done:      make(chan struct{}),
		changed:   make(chan struct{}),
		rejectLog: rateLog{limiter: rate.NewLimiter(rate.Every(time.Second), 5)},
	}
	g.pushID.Store(time.Now().UnixMilli())
	discard := logr.Discard()
	g.log.Store(&discard)
	g.metrics = newMetrics(cfg.Registerer, func() float64 { return float64(len(g.queue)) })
	g.client = paho.NewClient(g.clientOptions())
	return g, nil
}

func (g *Gateway) clientOptions() *paho.ClientOptions {
	o := paho.NewClientOptions()
	for _, b := range g.cfg.Brokers {
		o.AddBroker(b)
	}
	o.SetClientID(g.cfg.ClientID).
		SetUsername(g.cfg.Username).
		SetPassword(g.cfg.Password).
		SetProtocolVersion(4).
		SetCleanSession(false).
		SetResumeSubs(false). // we subscribe again ourselves, on every connect
		SetOrderMatters(false).
		SetAutoAckDisabled(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(g.cfg.MaxReconnectInterval).
		SetConnectTimeout(g.cfg.ConnectTimeout).
		SetKeepAlive(g.cfg.KeepAlive).
		SetPingTimeout(g.cfg.ConnectTimeout).
		SetWriteTimeout(g.cfg.PublishTimeout).
		// Every message goes through the default handler: messages the
		// broker delivers from the persistent session before our SUBSCRIBE
		// completes have no route yet, and paho would leave them unacked.
		SetDefaultPublishHandler(g.onMessage).
		SetOnConnectHandler(g.onConnect).
		SetConnectionLostHandler(g.onConnectionLost).
		SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) {
			g.logger().V(1).Info("Reconnecting to the MQTT broker")
		})
	if g.cfg.TLS != nil {
		o.SetTLSConfig(g.cfg.TLS)
	}
	UseBufferedConnections(o)
	return o
}

// NeedLeaderElection implements manager.LeaderElectionRunnable.
func (g *Gateway) NeedLeaderElection() bool { return !g.cfg.WithoutLeaderElection }

// Start connects (retrying until it succeeds), delivers messages to the
// handler until ctx ends, then disconnects. Messages still queued then are
// not acknowledged; the broker redelivers them to the next session.
func (g *Gateway) Start(ctx context.Context) error {
	if !g.started.CompareAndSwap(false, true) {
		return errors.New("mqtt: gateway already started")
	}
	log := logf.FromContext(ctx).WithName("mqtt-gateway").WithValues("clientID", g.cfg.ClientID)
	g.log.Store(&log)
	log.Info("Connecting to the MQTT broker", "brokers", g.cfg.Brokers, "products", g.cfg.ProductKeys)
	g.metrics.gateways.Inc()
	defer g.metrics.gateways.Dec()
	g.client.Connect() // with ConnectRetry the token only completes once connected; onConnect does the rest
	g.ingest(ctx)
	close(g.done)
	if g.StayFor != nil {
		select {
		case <-g.StayFor:
		case <-time.After(30 * time.Second):
		}
	}
	g.client.Disconnect(250)
	g.setState(func(s *ConnectionState) { s.Connected, s.Subscribed = false, false })
	log.Info("Disconnected from the MQTT broker")
	return nil
}

func (g *Gateway) logger() logr.Logger { return *g.log.Load() }

// State returns the current connection state.
func (g *Gateway) State() ConnectionState {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.state
}

// WaitFor blocks until cond holds for the connection state or ctx ends.
func (g *Gateway) WaitFor(ctx context.Context, cond func(ConnectionState) bool) error {
	for {
		g.mu.Lock()
		s, ch := g.state, g.changed
		g.mu.Unlock()
		if cond(s) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("mqtt: waiting for the connection state: %w (state %+v)", ctx.Err(), s)
		}
	}
}

// Stats returns running totals.
func (g *Gateway) Stats() Stats {
	s := &g.stats
	return Stats{
		Received: s.received.Load(), Rejected: s.rejected.Load(), Ignored: s.ignored.Load(),
		Dropped: s.dropped.Load(), Handled: s.handled.Load(),
		Published: s.published.Load(), PublishFailed: s.publishFailed.Load(),
	}
}

func (g *Gateway) setState(f func(*ConnectionState)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f(&g.state)
	close(g.changed)
	g.changed = make(chan struct{})
	// The gauge sums the process's gateways: this one counts while it is
	// connected and subscribed.
	if up := g.state.Connected && g.state.Subscribed; up != g.counted {
		g.counted = up
		if up {
			g.metrics.connected.Inc()
		} else {
			g.metrics.connected.Dec()
		}
	}
}

func (g *Gateway) onConnectionLost(_ paho.Client, err error) {
	g.metrics.connectionLost.Inc()
	g.setState(func(s *ConnectionState) { s.Connected, s.Subscribed = false, false })
	g.logger().Info("Lost the connection to the MQTT broker; reconnecting", "error", err.Error())
}

// onConnect runs on its own goroutine after every (re)connection and
// subscribes to every filter, retrying with backoff while this connection
// lasts.
func (g *Gateway) onConnect(c paho.Client) {
	g.metrics.connects.Inc()
	var gen uint64
	g.setState(func(s *ConnectionState) {
		s.Connected, s.Subscribed = true, false
		s.Connects++
		g.connGen++
		gen = g.connGen
	})
	filters := make(map[string]byte)
	for _, f := range g.cfg.filters() {
		filters[f] = 1
	}
	log := g.logger()
	for delay := 100 * time.Millisecond; ; delay = min(delay*2, g.cfg.MaxReconnectInterval) {
		err := subscribe(c, filters, g.cfg.ConnectTimeout)
		if g.currentGen() != gen {
			return // a newer connection took over
		}
		if err == nil {
			g.setState(func(s *ConnectionState) { s.Subscribed = true })
			log.Info("Connected to the MQTT broker and subscribed", "filters", len(filters))
			return
		}
		log.Error(err, "Subscribing to device topics failed; retrying", "retryIn", delay)
		select {
		case <-time.After(delay):
		case <-g.done:
			return
		}
		if !c.IsConnectionOpen() {
			return // onConnect runs again after the reconnection
		}
	}
}

func (g *Gateway) currentGen() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.connGen
}

func subscribe(c paho.Client, filters map[string]byte, timeout time.Duration) error {
	tok := c.SubscribeMultiple(filters, nil) // nil callback: the default handler gets everything
	if !tok.WaitTimeout(timeout) {
		return errors.New("subscribe timed out")
	}
	if err := tok.Error(); err != nil {
		return err
	}
	st, ok := tok.(*paho.SubscribeToken)
	if !ok {
		return nil
	}
	for f, code := range st.Result() {
		if code == 0x80 {
			return fmt.Errorf("broker refused subscription %q", f)
		}
	}
	return nil
}
