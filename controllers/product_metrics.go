package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// productDevices is the version distribution of each Product, from the
// inventory the reconciler already sums for the status, so that dashboards
// show a rollout's effect on the fleet. Its labels are bounded by products,
// modules and versions in use, never by devices.
var productDevices = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "otafleet_product_devices",
	Help: "Devices of a Product by module and firmware version, as in the Product's status.",
}, []string{"namespace", "product", "module", "version"})

func init() { metrics.Registry.MustRegister(productDevices) }

// recordVersions replaces a Product's series with those of its status:
// versions no device runs any more must disappear.
func recordVersions(p *otav1.Product) {
	forgetVersions(p.Namespace, p.Name)
	for _, m := range p.Status.Modules {
		for _, v := range m.Versions {
			productDevices.WithLabelValues(p.Namespace, p.Name, m.Module, v.Version).Set(float64(v.Devices))
		}
	}
}

func forgetVersions(namespace, name string) {
	productDevices.DeletePartialMatch(prometheus.Labels{"namespace": namespace, "product": name})
}

// Collectors returns the collectors this package registers, so that a test
// can check that dashboards ask only for metrics the operator exports.
func Collectors() []prometheus.Collector { return []prometheus.Collector{productDevices} }
