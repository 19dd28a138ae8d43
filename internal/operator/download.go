package operator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/otafleet/otafleet/internal/download"
	"github.com/otafleet/otafleet/internal/storage"
)

// addDownloadServer serves device downloads from the manager when
// --download-bind-address is set. It runs on every replica, leader or not:
// it keeps no state, and devices may reach any replica.
func addDownloadServer(mgr ctrl.Manager, o Options, store *storage.MinIO) error {
	d := o.Download
	if d.BindAddress == "" {
		return nil
	}
	srv, err := download.NewServer(download.Config{
		Secret: d.Secret, Bucket: o.S3.Bucket, Objects: store, EgressBytesPerSecond: d.EgressBytesPerSecond,
		Registerer: registry, Log: ctrl.Log.WithName("download"), CacheControl: d.CacheControl,
	})
	if err != nil {
		return fmt.Errorf("download server: %w", err)
	}
	ln, err := net.Listen("tcp", d.BindAddress)
	if err != nil {
		return fmt.Errorf("--download-bind-address: %w", err)
	}
	return mgr.Add(&downloadRunnable{ln: ln, srv: &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}})
}

// downloadRunnable serves until the manager stops, then lets downloads in
// flight finish for a few seconds.
type downloadRunnable struct {
	ln  net.Listener
	srv *http.Server
}

// NeedLeaderElection: every replica serves downloads.
func (r *downloadRunnable) NeedLeaderElection() bool { return false }

func (r *downloadRunnable) Start(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- r.srv.Serve(r.ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	stop, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.srv.Shutdown(stop); err != nil {
		_ = r.srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
