package appapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/otafleet/otafleet/internal/fleet"
)

// Engine is what the API needs of the rollout engine; *fleet.Engine
// implements it.
type Engine interface {
	// Ready reports whether the engine has rebuilt its state; before, every
	// device would look unknown.
	Ready() bool
	Confirm(productKey, device string) error
	CancelDevice(productKey, device string) error
	DeviceTasks(productKey, device string) ([]fleet.DeviceTask, bool)
	Notify(n fleet.Notifier, tasks bool) (remove func())
}

var _ Engine = (*fleet.Engine)(nil)

// Server is the app API. Create it with New and run it with Start (a
// manager Runnable) or Serve.
type Server struct {
	cfg     Config
	eng     Engine
	verify  *verifier
	limiter *userLimiter
	streams streamCounter
	hub     *hub
	metrics *metrics
	tls     *tls.Config
	// forwarder reaches other replicas' app APIs (forward.go).
	forwarder http.RoundTripper
}

// New checks the configuration and returns a server for eng.
func New(cfg Config, eng Engine) (*Server, error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("app API: %w", err)
	}
	s := &Server{
		cfg: cfg, eng: eng,
		verify:  newVerifier(&cfg),
		limiter: newUserLimiter(cfg.RatePerSecond, cfg.Burst),
		streams: streamCounter{max: cfg.MaxStreamsPerUser, n: map[string]int{}},
		metrics: newMetrics(cfg.Registerer),
	}
	s.hub = newHub(cfg.StreamBuffer, s.metrics.overflows.Inc)
	if len(cfg.TLSCertPEM) > 0 {
		cert, err := tls.X509KeyPair(cfg.TLSCertPEM, cfg.TLSKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("app API: TLS certificate: %w", err)
		}
		s.tls = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		s.forwarder = forwardTransport(cert.Certificate[0])
	} else {
		s.forwarder = forwardTransport(nil)
	}
	return s, nil
}

// NeedLeaderElection runs the API on the leader, where the engine runs;
// with products owned by Lease, on every replica.
func (s *Server) NeedLeaderElection() bool {
	_, sharded := s.eng.(owner)
	return !sharded
}

// Start listens on Config.Addr and serves until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("app API: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends, then shuts down gracefully. It feeds
// the progress streams from the engine's device listener while it runs.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	lg := ctrllog.FromContext(ctx).WithName("appapi")
	ctx = logr.NewContext(ctx, lg)
	defer s.eng.Notify(s.hub, true)()

	srv := &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		// No ReadTimeout or WriteTimeout: they would cut progress streams.
		// Each handler sets deadlines for its own reads and writes.
		IdleTimeout: 2 * time.Minute,
		// Tokens list the user's devices, so they can be large.
		MaxHeaderBytes: 128 << 10,
		TLSConfig:      s.tls,
		// Requests end with ctx, so that open streams do not hold up the
		// shutdown.
		BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog:    log.New(logWriter{lg.V(1)}, "", 0),
	}
	done := make(chan error, 1)
	go func() {
		if s.tls != nil {
			done <- srv.ServeTLS(ln, "", "")
		} else {
			done <- srv.Serve(ln)
		}
	}()
	lg.Info("Serving the app API", "address", ln.Addr().String(), "tls", s.tls != nil)
	select {
	case err := <-done:
		return fmt.Errorf("app API: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if e := <-done; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	return err
}

// logWriter sends net/http's own messages (TLS handshake errors and the
// like) to the logger; they are about clients, so only at V(1).
type logWriter struct{ l logr.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.l.Info(strings.TrimSpace(string(p)))
	return len(p), nil
}

// Endpoint paths.
const (
	PathFirmwareGet    = "/living/ota/firmware/file/get"
	PathConfirm        = "/living/ota/confirm"
	PathDevicesList    = "/living/ota/devices/list"
	PathProgressList   = "/living/ota/progress/list"
	PathProgressGet    = "/living/ota/progress/get"
	PathCancel         = "/living/ota/cancel"
	PathProgressStream = "/living/ota/progress/stream"
)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	for path, e := range map[string]struct {
		name string
		h    func(*http.Request, *caller) (any, error)
	}{
		PathFirmwareGet:  {"firmware_get", s.firmwareGet},
		PathConfirm:      {"confirm", s.confirm},
		PathDevicesList:  {"devices_list", s.devicesList},
		PathProgressList: {"progress_list", s.progressList},
		PathProgressGet:  {"progress_get", s.progressGet},
		PathCancel:       {"cancel", s.cancel},
	} {
		mux.Handle("POST "+path, s.call(e.name, e.h))
		mux.Handle(path, s.refuse(http.StatusMethodNotAllowed, "POST"))
	}
	mux.Handle("GET "+PathProgressStream, http.HandlerFunc(s.stream))
	mux.Handle(PathProgressStream, s.refuse(http.StatusMethodNotAllowed, "GET"))
	mux.Handle("/", s.refuse(http.StatusNotFound, ""))
	return mux
}

// refuse answers requests no endpoint takes, in the envelope too.
func (s *Server) refuse(status int, allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if allow != "" {
			w.Header().Set("Allow", allow)
		}
		s.metrics.observe("other", status, -1)
		writeError(w, errorf(status, "%s", strings.ToLower(http.StatusText(status))))
	})
}

// call wraps a JSON endpoint: deadlines, authentication, rate limit, body
// limit, then the handler, whose answer goes out in the envelope.
func (s *Server) call(name string, h func(*http.Request, *caller) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(start.Add(s.cfg.WriteTimeout))
		_ = rc.SetWriteDeadline(start.Add(s.cfg.WriteTimeout))
		var data any
		c, err := s.admit(r)
		if s.forward(w, r, err) {
			s.metrics.observe(name, http.StatusOK, time.Since(start).Seconds())
			return
		}
		if err == nil {
			r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
			if r.ContentLength > s.cfg.MaxBodyBytes {
				// Refused before reading: the length is announced.
				err = errorf(http.StatusRequestEntityTooLarge, "the body is larger than %d bytes", s.cfg.MaxBodyBytes)
			} else {
				data, err = h(r, c)
			}
		}
		code := http.StatusOK
		if err != nil {
			code = statusOf(err)
			s.logFailure(r, name, err)
			writeError(w, err)
		} else {
			writeOK(w, data)
		}
		s.metrics.observe(name, code, time.Since(start).Seconds())
	})
}

// admit authenticates and rate limits a request, and checks that the
// engine can answer it.
func (s *Server) admit(r *http.Request) (*caller, error) {
	c, err := s.verify.verify(r.Header.Get("Authorization"))
	if err != nil {
		var ae *authError
		errors.As(err, &ae)
		s.metrics.authFailures.WithLabelValues(ae.reason).Inc()
		ctrllog.FromContext(r.Context()).V(1).Info("Token refused", "reason", ae.reason, "error", ae.err.Error())
		if ae.reason == authExpired {
			return nil, errExpired
		}
		return nil, errUnauthenticated
	}
	if ok, wait := s.limiter.allow(c.user, s.cfg.Now()); !ok {
		s.metrics.rateLimited.Inc()
		return nil, &apiError{status: http.StatusTooManyRequests, message: "rate limit exceeded", retryAfter: wait}
	}
	if !s.eng.Ready() {
		return nil, errNotReady
	}
	return c, s.here(c)
}

func statusOf(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.status
	}
	return http.StatusInternalServerError
}

func (s *Server) logFailure(r *http.Request, endpoint string, err error) {
	l := ctrllog.FromContext(r.Context())
	if statusOf(err) >= 500 {
		l.Error(err, "App API request failed", "endpoint", endpoint)
	}
}
