package testserver

import (
	"fmt"
	"log/slog"
	"os"
	"sync"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// MochiOptions tunes StartMochi. The zero value suits tests.
type MochiOptions struct {
	// Address is host:port to listen on; empty picks a free loopback port.
	// Pass the address of a stopped broker to "restart" it.
	Address string
	// MaxClientWritesPending is the per-client outbound queue. Mochi drops
	// messages (QoS 1 included) for a client whose queue is full, so a
	// gateway that receives a whole fleet's burst needs more than Mochi's
	// default of 8192. Each connected client preallocates 8 bytes per slot,
	// which matters with one connection per simulated device. Zero means
	// 16384.
	MaxClientWritesPending int32
	// Logger receives the broker's logs; nil keeps only errors, on stderr.
	Logger *slog.Logger
	// AutoSubscribeOTA subscribes every connection whose user name is
	// "deviceName&productKey" to that device's upgrade and firmware/get_reply
	// topics, as the vendor's broker does for devices built on LinkSDK 4.x,
	// which never subscribe to them (see otaAutoSubscribe for what other
	// brokers need).
	AutoSubscribeOTA bool
}

// Mochi is a running embedded Mochi MQTT broker, anonymous access allowed.
type Mochi struct {
	// Address is host:port of the TCP listener.
	Address string
	// URL is the broker URL for MQTT clients, tcp://host:port.
	URL string

	server   *mochi.Server
	stopOnce sync.Once
	stopErr  error
}

// StartMochi starts an embedded broker and returns once it accepts
// connections. It is what in-process tests and the playground use; end-to-end
// tests use Mosquitto.
func StartMochi(opts MochiOptions) (*Mochi, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	}
	pending := opts.MaxClientWritesPending
	if pending == 0 {
		pending = 1 << 14
	}
	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = pending
	// Inflight QoS 1 messages per client: above this Mochi drops rather than
	// queues, so match the outbound queue.
	caps.MaximumInflight = uint16(min(int(pending), 65535))
	server := mochi.New(&mochi.Options{Capabilities: caps, Logger: logger, InlineClient: false})
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("mochi: %w", err)
	}
	if opts.AutoSubscribeOTA {
		if err := server.AddHook(&otaAutoSubscribe{server: server}, nil); err != nil {
			return nil, fmt.Errorf("mochi: %w", err)
		}
	}
	addr := opts.Address
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})
	// AddListener binds the socket, so the port is known and connectable
	// before Serve runs: no wait loop needed.
	if err := server.AddListener(tcp); err != nil {
		return nil, fmt.Errorf("mochi listen on %s: %w", addr, err)
	}
	if err := server.Serve(); err != nil {
		_ = server.Close()
		return nil, fmt.Errorf("mochi serve: %w", err)
	}
	m := &Mochi{Address: tcp.Address(), server: server}
	m.URL = "tcp://" + m.Address
	return m, nil
}

// Server returns the embedded server, for callers that want its hooks or
// statistics.
func (m *Mochi) Server() *mochi.Server { return m.server }

// Stop closes the listener and every client connection. It is safe to call
// more than once.
func (m *Mochi) Stop() error {
	m.stopOnce.Do(func() { m.stopErr = m.server.Close() })
	return m.stopErr
}
