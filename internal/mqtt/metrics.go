package mqtt

import (
	"github.com/prometheus/client_golang/prometheus"

	shared "github.com/otafleet/otafleet/internal/metrics"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/otafleet/otafleet/internal/protocol"
)

// metrics are the gateway's Prometheus collectors. Children for the hot
// path are resolved once, so counting a message is one atomic add.
type metrics struct {
	connected      prometheus.Gauge
	gateways       prometheus.Gauge
	connects       prometheus.Counter
	connectionLost prometheus.Counter
	received       [protocol.KindFirmwareGetReply + 1]prometheus.Counter
	rejected       *prometheus.CounterVec
	ignored        prometheus.Counter
	dropped        prometheus.Counter
	fullWaits      prometheus.Counter
	handlerPanics  prometheus.Counter
	published      *prometheus.CounterVec
	publishLatency *prometheus.HistogramVec
}

// Publish results, the "result" label of published_total.
const (
	resultOK           = "ok"
	resultError        = "error"
	resultTimeout      = "timeout"
	resultNotConnected = "not_connected"
)

func newMetrics(reg prometheus.Registerer, queueLen func() float64) *metrics {
	if reg == nil {
		reg = crmetrics.Registry
	}
	const ns, sub = "otafleet", "mqtt"
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: ns, Subsystem: sub, Name: name, Help: help}
	}
	m := &metrics{}
	m.connected = shared.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts(opts("connected",
		"Gateways connected to the broker and subscribed: 1 for the leader's, one per owned product with product Leases."))))
	m.gateways = shared.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts(opts("gateways",
		"Gateways running in this process: 1 on the leader, one per owned product with product Leases, 0 on a standby."))))
	m.connects = shared.Register(reg, prometheus.NewCounter(prometheus.CounterOpts(opts("connects_total",
		"Successful connections to the broker, reconnections included."))))
	m.connectionLost = shared.Register(reg, prometheus.NewCounter(prometheus.CounterOpts(opts("connection_lost_total",
		"Connections to the broker lost unexpectedly."))))
	received := shared.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts(opts("messages_received_total",
		"Valid device messages received, by topic kind.")), []string{"kind"}))
	for _, k := range []protocol.Kind{protocol.KindInform, protocol.KindProgress, protocol.KindFirmwareGet, protocol.KindRequest} {
		m.received[k] = received.WithLabelValues(k.String())
	}
	m.rejected = shared.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts(opts("messages_rejected_total",
		"Device messages refused as invalid, by reason.")), []string{"reason"}))
	m.ignored = shared.Register(reg, prometheus.NewCounter(prometheus.CounterOpts(opts("messages_ignored_total",
		"The backend's own replies seen on the older request topic."))))
	m.dropped = shared.Register(reg, prometheus.NewCounter(prometheus.CounterOpts(opts("messages_dropped_total",
		"QoS 0 device messages dropped because the queue was full."))))
	m.fullWaits = shared.Register(reg, prometheus.NewCounter(prometheus.CounterOpts(opts("queue_full_waits_total",
		"QoS 1 device messages that had to wait for room in the queue (backpressure)."))))
	m.handlerPanics = shared.Register(reg, prometheus.NewCounter(prometheus.CounterOpts(opts("handler_panics_total",
		"Batches whose handler panicked; the panic is recovered and logged."))))
	shared.Register(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("queue_length",
		"Device messages decoded and waiting for the handler.")), queueLen))
	m.published = shared.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts(opts("published_total",
		"Messages published to devices, by kind and result.")), []string{"kind", "result"}))
	m.publishLatency = shared.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: ns, Subsystem: sub, Name: "publish_duration_seconds",
		Help:    "Time from publish to the broker's acknowledgement, by kind.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9), // 0.5 ms .. 33 s
	}, []string{"kind"}))
	// Pre-create the reasons so dashboards see zeros rather than gaps.
	for _, r := range []protocol.Reason{protocol.ReasonTooLarge, protocol.ReasonInvalidTopic, protocol.ReasonUnknownTopic,
		protocol.ReasonInvalidJSON, protocol.ReasonInvalidSchema, protocol.ReasonInvalidID, protocol.ReasonInvalidVersion,
		protocol.ReasonInvalidModule, protocol.ReasonInvalidStep} {
		m.rejected.WithLabelValues(string(r))
	}
	return m
}
