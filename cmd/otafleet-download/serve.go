package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/otafleet/otafleet/internal/download"
	"github.com/otafleet/otafleet/internal/storage"
)

// run serves until ctx ends, then lets downloads in flight finish for up to
// the shutdown timeout. onListen, when set, learns the bound addresses
// (tests bind port 0).
func run(ctx context.Context, o options, log logr.Logger, onListen func(downloads, metrics net.Addr)) error {
	handler, reg, err := newHandler(o, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.bindAddress)
	if err != nil {
		return fmt.Errorf("--bind-address: %w", err)
	}
	servers := []*http.Server{downloadServer(o, handler)}
	listeners := []net.Listener{ln}
	if o.metricsAddress != "0" {
		mln, err := net.Listen("tcp", o.metricsAddress)
		if err != nil {
			ln.Close()
			return fmt.Errorf("--metrics-bind-address: %w", err)
		}
		servers, listeners = append(servers, metricsServer(reg)), append(listeners, mln)
	}
	if onListen != nil {
		onListen(ln.Addr(), listeners[len(listeners)-1].Addr())
	}
	log.Info("Serving downloads", "address", ln.Addr().String(), "tls", o.tlsCert != "",
		"bucket", o.s3Bucket, "egressBytesPerSecond", o.egressBytesPerSecond)
	return serveUntilDone(ctx, o, servers, listeners)
}

// newHandler builds the download server from the flags and the secret file.
func newHandler(o options, log logr.Logger) (http.Handler, *prometheus.Registry, error) {
	raw, err := os.ReadFile(o.secretFile)
	if err != nil {
		return nil, nil, fmt.Errorf("--secret-file: %w", err)
	}
	secret, err := download.ParseSecret(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("--secret-file %s: %w", o.secretFile, err)
	}
	store, err := storage.New(storage.Config{
		Endpoint: o.s3Endpoint, Insecure: o.s3Insecure, Region: o.s3Region,
		AccessKey: o.accessKey, SecretKey: o.secretKey,
	})
	if err != nil {
		return nil, nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := download.NewServer(download.Config{
		Secret: secret, Bucket: o.s3Bucket, Objects: store,
		EgressBytesPerSecond: o.egressBytesPerSecond, CacheControl: o.cacheControl,
		Registerer: reg, Log: log,
	})
	return srv, reg, err
}

func downloadServer(o options, h http.Handler) *http.Server {
	return &http.Server{
		Handler: h,
		// Devices send a few short headers; a slow or idle one must not
		// hold a connection forever. No write timeout: a slow device on a
		// capped link may take minutes for a large image.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    8 << 10,
		// TLS 1.2 and up with Go's modern suites; firmware that pins
		// TLS_RSA_WITH_AES_256_CBC_SHA256 needs an ingress or CDN in front.
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12},
	}
}

// metricsServer serves Prometheus metrics and the probes. Readiness does
// not ask the store: a store outage would take every replica out of the
// Service at once and turn the devices' retries into refused connections.
func metricsServer(reg *prometheus.Registry) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ok := func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) }
	mux.HandleFunc("/healthz", ok)
	mux.HandleFunc("/readyz", ok)
	return &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
}

// serveUntilDone serves on each listener until ctx ends or one fails, then
// shuts all down gracefully.
func serveUntilDone(ctx context.Context, o options, servers []*http.Server, listeners []net.Listener) error {
	errs := make(chan error, len(servers))
	for i, srv := range servers {
		go func() {
			var err error
			if i == 0 && o.tlsCert != "" {
				err = srv.ServeTLS(listeners[i], o.tlsCert, o.tlsKey)
			} else {
				err = srv.Serve(listeners[i])
			}
			errs <- err
		}()
	}
	var failed error
	select {
	case <-ctx.Done():
	case failed = <-errs:
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	for _, srv := range servers {
		if err := srv.Shutdown(shutdownCtx); err != nil {
			// Downloads still running after the timeout are cut; devices resume.
			_ = srv.Close()
		}
	}
	if failed != nil && !errors.Is(failed, http.ErrServerClosed) {
		return failed
	}
	return nil
}
