package mqtt

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/otafleet/otafleet/internal/protocol"
)

// Defaults for zero Config fields.
const (
	DefaultQueueSize      = 16384
	DefaultBatchSize      = 512
	DefaultPublishTimeout = 10 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	DefaultKeepAlive      = 30 * time.Second
	// DefaultMaxReconnectInterval caps paho's reconnection backoff, which
	// doubles while connections keep being lost soon after they came up
	// (a broker crash-looping or restarted node by node). Every second the
	// gateway stays away, a broker without persistence drops the device
	// reports sent meanwhile (docs/brokers.md), and one client trying
	// every 5 s costs a broker nothing.
	DefaultMaxReconnectInterval = 5 * time.Second
)

// Config describes the broker connection. Credentials and TLS material are
// passed in by the caller (the manager reads them from a Secret).
type Config struct {
	// Brokers are broker URLs: tcp://host:1883, ssl://host:8883 (or tls://).
	// paho tries them in order.
	Brokers []string
	// ClientID is fixed so that the broker keeps the session (and queues
	// device reports) across restarts. Required.
	ClientID string
	// Username and Password authenticate to the broker; optional.
	Username string
	Password string
	// TLS is used for ssl:// and tls:// brokers; nil means the system roots.
	TLS *tls.Config
	// ProductKeys limits the subscriptions to these products; empty
	// subscribes to every product ("+").
	ProductKeys []string
	// WithoutLeaderElection runs the gateway on every replica; by default
	// a manager runs it on the leader only. A gateway of one product
	// (ProductKeys) run by the product's owner (internal/shard) is not a
	// manager runnable at all.
	WithoutLeaderElection bool
	// QueueSize bounds the messages decoded but not yet handled.
	QueueSize int
	// BatchSize bounds one HandleBatch call.
	BatchSize int
	// PublishTimeout bounds a QoS 1 publish until the broker's PUBACK.
	PublishTimeout time.Duration
	// ConnectTimeout, KeepAlive and MaxReconnectInterval tune the link.
	ConnectTimeout       time.Duration
	KeepAlive            time.Duration
	MaxReconnectInterval time.Duration
	// Registerer receives the metrics; nil means controller-runtime's
	// registry. Tests pass their own to read values in isolation.
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() {
	setDefault(&c.QueueSize, DefaultQueueSize)
	setDefault(&c.BatchSize, DefaultBatchSize)
	setDefault(&c.PublishTimeout, DefaultPublishTimeout)
	setDefault(&c.ConnectTimeout, DefaultConnectTimeout)
	setDefault(&c.KeepAlive, DefaultKeepAlive)
	setDefault(&c.MaxReconnectInterval, DefaultMaxReconnectInterval)
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

func (c *Config) validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("no broker URL"))
	}
	for _, b := range c.Brokers {
		u, err := url.Parse(b)
		if err != nil || u.Host == "" {
			errs = append(errs, fmt.Errorf("broker %q is not a URL like tcp://host:1883", b))
			continue
		}
		switch u.Scheme {
		case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
		default:
			errs = append(errs, fmt.Errorf("broker %q: unsupported scheme %q", b, u.Scheme))
		}
	}
	if c.ClientID == "" {
		errs = append(errs, errors.New("client ID is required for a persistent session"))
	}
	for _, pk := range c.ProductKeys {
		if !protocol.ValidSegment(pk) {
			errs = append(errs, fmt.Errorf("product key %q is not a valid topic segment", pk))
		}
	}
	if c.QueueSize < 0 || c.BatchSize < 0 {
		errs = append(errs, errors.New("queue and batch sizes must be positive"))
	}
	return errors.Join(errs...)
}

// filters returns the subscription filters for the configured products.
func (c *Config) filters() []string {
	products := c.ProductKeys
	if len(products) == 0 {
		products = []string{"+"}
	}
	var out []string
	for _, pk := range products {
		out = append(out, protocol.DeviceFilters(pk)...)
	}
	return out
}
