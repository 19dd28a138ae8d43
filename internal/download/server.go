package download

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/otafleet/otafleet/internal/storage"
)

// Objects is the part of object storage the server reads; *storage.MinIO
// implements it.
type Objects interface {
	// GetRange opens length bytes from offset (length < 0: to the end) and
	// returns the whole object's size in ObjectInfo.Size. An offset at or
	// past the end returns an error wrapping storage.ErrRangeNotSatisfiable
	// with the size; a missing object one wrapping storage.ErrNotFound.
	GetRange(ctx context.Context, bucket, key string, offset, length int64) (io.ReadCloser, storage.ObjectInfo, error)
	// Stat returns the object's metadata (HEAD requests, suffix ranges).
	Stat(ctx context.Context, bucket, key string) (storage.ObjectInfo, error)
}

// Config configures a Server.
type Config struct {
	// Secret is the HMAC secret shared with the Signer (see ParseSecret).
	Secret []byte
	// Bucket holds the images; it never appears in an answer.
	Bucket string
	// Objects reads the images.
	Objects Objects
	// EgressBytesPerSecond caps the bytes per second of all downloads of
	// this server together; 0 is no cap.
	EgressBytesPerSecond int64
	// Registerer receives the otafleet_download_ metrics; nil registers none.
	Registerer prometheus.Registerer
	// Log receives store errors; the zero value discards them.
	Log logr.Logger
	// Now is the clock tokens are checked against; nil is time.Now.
	Now func() time.Time
	// CacheControl marks answers cacheable by a CDN until the URL expires
	// (see the package doc); otherwise they say no-store.
	CacheControl bool
}

// Server answers device downloads. It keeps no state between requests, so
// any number of replicas can serve the same URLs.
type Server struct {
	cfg     Config
	limiter *rate.Limiter // nil: no cap
	chunk   int           // bytes per limiter wait and per write
	metrics *serverMetrics
	// logs lets a few store errors a second reach the log: in a store
	// outage every download fails, and the metrics count them all.
	logs *rate.Limiter
}

// NewServer checks cfg and builds a Server.
func NewServer(cfg Config) (*Server, error) {
	if err := checkSecret(cfg.Secret); err != nil {
		return nil, err
	}
	switch {
	case cfg.Bucket == "":
		return nil, errors.New("download server: the bucket is required")
	case cfg.Objects == nil:
		return nil, errors.New("download server: object storage is required")
	case cfg.EgressBytesPerSecond < 0:
		return nil, fmt.Errorf("download server: egress cap %d bytes/s is negative; 0 means no cap", cfg.EgressBytesPerSecond)
	}
	cfg.Secret = bytes.Clone(cfg.Secret) // the caller may reuse its slice
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log.GetSink() == nil {
		cfg.Log = logr.Discard()
	}
	s := &Server{cfg: cfg, chunk: copyBufferBytes, metrics: newMetrics(cfg.Registerer), logs: rate.NewLimiter(1, 5)}
	if bps := cfg.EgressBytesPerSecond; bps > 0 {
		// The burst is a tenth of a second of traffic (at least a chunk):
		// the cap holds over fractions of a second, and a writer that
		// wakes late on a busy machine does not lose the time it overslept.
		s.chunk = int(min(bps, copyBufferBytes))
		s.limiter = rate.NewLimiter(rate.Limit(bps), int(max(bps/10, int64(s.chunk))))
	}
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.metrics.inFlight.Inc()
	defer s.metrics.inFlight.Dec()
	reason, abort := s.serve(w, r)
	s.metrics.count(reason)
	if abort {
		// The headers promised more bytes than the store gave: only a cut
		// connection tells the device, which then resumes with a Range.
		panic(http.ErrAbortHandler)
	}
}

// serve answers one request and returns the reason to count, and whether
// the connection must be cut.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) (string, bool) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		return reasonMethod, false
	}
	key, expiry, err := verifyPath(s.cfg.Secret, r.URL.Path, s.cfg.Now())
	if errors.Is(err, errExpired) {
		writeError(w, http.StatusForbidden, "download link expired")
		return reasonExpired, false
	} else if err != nil {
		writeError(w, http.StatusForbidden, "forbidden")
		return reasonForbidden, false
	}
	spec, ranged := parseRange(r.Header.Get("Range"))
	d := &download{s: s, w: w, r: r, key: key, expiry: expiry, spec: spec, ranged: ranged}
	return d.serve()
}

// writeError answers a short text body with an exact length, never a
// detail of the store: devices log it and people read those logs.
func writeError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(msg)+1))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg+"\n")
}

// logStoreError logs a store failure unless a few were logged this second.
func (s *Server) logStoreError(err error, msg string, kv ...any) {
	if s.logs.Allow() {
		s.cfg.Log.Error(err, msg, kv...)
	}
}
