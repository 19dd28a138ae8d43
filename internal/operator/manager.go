package operator

import (
	"fmt"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	otascheme "github.com/otafleet/otafleet/internal/scheme"
)

// LeaderElectionID names the lease replicas compete for; only the leader
// runs the rollout engine and the controllers.
const LeaderElectionID = "otafleet-manager.ota.otafleet.dev"

// NewManager builds the manager with probes, metrics and leader election.
// The controllers, gateway and engine are added by Setup.
func NewManager(cfg *rest.Config, o Options) (ctrl.Manager, error) {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  otascheme.New(),
		Metrics:                 metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:  o.ProbeAddr,
		LeaderElection:          o.LeaderElection,
		LeaderElectionID:        LeaderElectionID,
		LeaderElectionNamespace: o.LeaderElectionNS,
		// A new leader starts as soon as the old one is gone, instead of
		// waiting for the lease to expire.
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 nonZero(o.Lease.LeaseDuration),
		RenewDeadline:                 nonZero(o.Lease.RenewDeadline),
		RetryPeriod:                   nonZero(o.Lease.RetryPeriod),
		// Tests and the lab start one manager after another in a process;
		// names are unique within each manager all the same.
		Controller: ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, err
	}
	return mgr, nil
}

// nonZero is nil for zero, so that controller-runtime applies its default.
func nonZero(d time.Duration) *time.Duration {
	if d == 0 {
		return nil
	}
	return &d
}
