// Package monitoring checks that the Grafana dashboard and the alert rules in
// config/ are valid PromQL and ask only for metrics the operator exports, so
// that a renamed metric cannot leave an empty panel or a silent alert.
package monitoring

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/otafleet/otafleet/controllers"
	"github.com/otafleet/otafleet/internal/fleet"
	"github.com/otafleet/otafleet/internal/mqtt"
	"github.com/otafleet/otafleet/internal/protocol"
)

// describer registers collectors into a real registry and records the name
// of every metric they describe: a vector without series yet is described
// but not gathered, and dashboards need it all the same.
type describer struct {
	prometheus.Registerer
	names map[string]bool
}

var fqNameRE = regexp.MustCompile(`fqName: "([^"]+)"`)

func (d *describer) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	for desc := range ch {
		if m := fqNameRE.FindStringSubmatch(desc.String()); m != nil {
			d.names[m[1]] = true
		}
	}
	return d.Registerer.Register(c)
}

func (d *describer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := d.Register(c); err != nil {
			panic(err)
		}
	}
}

// exportedMetrics registers the operator's collectors as the manager does
// and returns every metric name they and controller-runtime's registry
// (Go runtime, process, controllers, client-go) export.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	d := &describer{Registerer: prometheus.NewRegistry(), names: map[string]bool{}}
	d.MustRegister(fleet.NewCollector(nil))
	d.MustRegister(controllers.Collectors()...)
	// New registers the gateway's metrics; nothing connects before Start.
	_, err := mqtt.New(mqtt.Config{Brokers: []string{"tcp://127.0.0.1:1883"}, ClientID: "metrics-check", Registerer: d},
		mqtt.HandlerFunc(func(context.Context, []protocol.Message) {}))
	if err != nil {
		t.Fatal(err)
	}
	families, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		d.names[f.GetName()] = true
	}
	return d.names
}

// exported reports whether name is a series of an exported metric: the
// metric itself, or the _bucket, _sum and _count series of a histogram.
func exported(names map[string]bool, name string) bool {
	if names[name] {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && names[base] {
			return true
		}
	}
	return false
}

func TestExportedMetricsIncludeTheOperators(t *testing.T) {
	names := exportedMetrics(t)
	for _, want := range []string{"otafleet_fleet_tasks", "otafleet_fleet_batches", "otafleet_mqtt_connected",
		"otafleet_mqtt_publish_duration_seconds", "otafleet_product_devices", "process_resident_memory_bytes",
		"go_memstats_heap_inuse_bytes"} {
		if !names[want] {
			t.Errorf("%s is not among the exported metrics; the check below would be vacuous", want)
		}
	}
	if exported(names, "otafleet_no_such_metric") || !exported(names, "otafleet_mqtt_publish_duration_seconds_bucket") {
		t.Error("exported() does not tell exported series from others")
	}
}
