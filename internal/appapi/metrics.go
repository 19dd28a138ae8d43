package appapi

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	shared "github.com/otafleet/otafleet/internal/metrics"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// metrics are the server's Prometheus collectors; labels are endpoints,
// status codes and reasons, never users or devices.
type metrics struct {
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	authFailures *prometheus.CounterVec
	rateLimited  prometheus.Counter
	streams      prometheus.Gauge
	streamEvents prometheus.Counter
	overflows    prometheus.Counter
	forwarded    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		reg = crmetrics.Registry
	}
	const ns, sub = "otafleet", "appapi"
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: ns, Subsystem: sub, Name: name, Help: help}
	}
	m := &metrics{}
	m.requests = shared.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts(opts("requests_total",
		"App API requests answered, by endpoint and status code.")), []string{"endpoint", "code"}))
	m.duration = shared.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: ns, Subsystem: sub, Name: "request_duration_seconds",
		Help:    "Time to answer App API requests (streams excluded), by endpoint.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8), // 0.5 ms .. 8 s
	}, []string{"endpoint"}))
	m.authFailures = shared.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts(opts("auth_failures_total",
		"Requests refused for their bearer token, by reason (missing, expired, invalid).")), []string{"reason"}))
	m.rateLimited = shared.Register(reg, prometheus.NewCounter(prometheus.CounterOpts(opts("rate_limited_total",
		"Requests refused because their user exceeded the rate limit."))))
	m.streams = shared.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts(opts("streams",
		"Progress streams open now."))))
	m.streamEvents = shared.Register(reg, prometheus.NewCounter(prometheus.CounterOpts(opts("stream_events_total",
		"Progress events written to streams."))))
	m.forwarded = shared.Register(reg, prometheus.NewCounter(prometheus.CounterOpts(opts("forwarded_total",
		"Requests forwarded to the replica that owns their devices' product (product Leases)."))))
	m.overflows = shared.Register(reg, prometheus.NewCounter(prometheus.CounterOpts(opts("stream_overflows_total",
		"Progress streams ended because the client did not keep up with its events."))))
	for _, r := range []string{authMissing, authExpired, authInvalid} {
		m.authFailures.WithLabelValues(r)
	}
	return m
}

func (m *metrics) observe(endpoint string, code int, seconds float64) {
	m.requests.WithLabelValues(endpoint, strconv.Itoa(code)).Inc()
	if seconds >= 0 {
		m.duration.WithLabelValues(endpoint).Observe(seconds)
	}
}
