package main

import (
	"context"
	"net"

	"github.com/otafleet/otafleet/internal/dashboard"
	"github.com/otafleet/otafleet/internal/lab"
)

// dashboardAddress is where `kubectl ota dashboard` listens by default, so
// the playground's URL is the one the docs give.
const dashboardAddress = "127.0.0.1:3100"

// startDashboard serves the dashboard of the demo namespace in process, as
// the playground's admin user, until ctx ends. The playground goes on
// without it if it cannot start: the rollout does not need it.
func startDashboard(ctx context.Context, l *lab.Lab) {
	ln, err := net.Listen("tcp", dashboardAddress)
	if err != nil {
		say("%s is taken (%v); the dashboard listens on a free port instead", dashboardAddress, err)
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			say("Dashboard not started: %v", err)
			return
		}
	}
	srv, err := dashboard.Start(ctx, dashboard.Options{Config: l.ControlPlane.Config, Namespace: namespace})
	if err != nil {
		_ = ln.Close()
		say("Dashboard not started: %v", err)
		return
	}
	go func() { _ = srv.Serve(ctx, ln) }()
	say("Dashboard: http://%s/ (follow the rollout in a browser)", ln.Addr())
}
