// Package metrics holds what the operator's Prometheus metrics share.
package metrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register adds c to reg, or returns the collector already registered under
// the same name, so that a second gateway or app API in one process (tests,
// the playground) shares the series instead of failing.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// Only a programming error (conflicting help or labels) gets here.
		panic(err)
	}
	return c
}
