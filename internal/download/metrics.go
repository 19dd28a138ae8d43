package download

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/otafleet/otafleet/internal/metrics"
)

// Request outcomes: the reason label of otafleet_download_requests_total.
// A fixed set, so the series count never grows with devices or images.
const (
	reasonOK         = "ok"          // 200
	reasonPartial    = "partial"     // 206
	reasonForbidden  = "forbidden"   // 403: forged or malformed URL
	reasonExpired    = "expired"     // 403: a genuine URL past its expiry
	reasonNotFound   = "not_found"   // 404
	reasonRange      = "range"       // 416
	reasonStoreError = "store_error" // 503, or the store failed mid-body
	reasonMethod     = "method"      // 405
	reasonAborted    = "aborted"     // the client went away mid-body
)

// codeClass maps each reason to the status class devices saw.
var codeClass = map[string]string{
	reasonOK: "2xx", reasonPartial: "2xx", reasonAborted: "2xx",
	reasonForbidden: "4xx", reasonExpired: "4xx", reasonNotFound: "4xx",
	reasonRange: "4xx", reasonMethod: "4xx", reasonStoreError: "5xx",
}

type serverMetrics struct {
	inFlight prometheus.Gauge
	bytes    prometheus.Counter
	requests *prometheus.CounterVec
}

// newMetrics registers the collectors in reg (none when reg is nil, e.g.
// in tests that build many servers).
func newMetrics(reg prometheus.Registerer) *serverMetrics {
	m := &serverMetrics{
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "otafleet_download_in_flight",
			Help: "Downloads being served now.",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "otafleet_download_bytes_total",
			Help: "Image bytes written to devices, aborted downloads included.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "otafleet_download_requests_total",
			Help: "Download requests by status class and reason (ok, partial, forbidden, expired, not_found, range, store_error, method, aborted).",
		}, []string{"code", "reason"}),
	}
	if reg != nil {
		m.inFlight = metrics.Register(reg, m.inFlight)
		m.bytes = metrics.Register(reg, m.bytes)
		m.requests = metrics.Register(reg, m.requests)
	}
	// Every series exists from the start, so rate() and alerts see zeros.
	for reason, code := range codeClass {
		m.requests.WithLabelValues(code, reason)
	}
	return m
}

func (m *serverMetrics) count(reason string) {
	m.requests.WithLabelValues(codeClass[reason], reason).Inc()
}
