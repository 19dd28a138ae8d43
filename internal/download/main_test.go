package download

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/otafleet/otafleet/internal/storage"
	"github.com/otafleet/otafleet/internal/testserver"
)

// minioServer is the real MinIO the tests of this package share; each test
// works in its own bucket.
var minioServer *testserver.MinIO

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	minioServer, err = testserver.StartMinIO(context.Background(), testserver.MinIOOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting MinIO:", err)
		return 1
	}
	defer minioServer.Stop()
	return m.Run()
}

var bucketSeq atomic.Int32

// newStore returns a client of the test MinIO and a fresh private bucket.
func newStore(t testing.TB) (*storage.MinIO, string) {
	t.Helper()
	st, err := storage.New(storage.Config{
		Endpoint:  minioServer.Endpoint,
		Insecure:  true,
		AccessKey: minioServer.AccessKey,
		SecretKey: minioServer.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	bucket := fmt.Sprintf("dl-%d-%d", os.Getpid(), bucketSeq.Add(1))
	if err := st.EnsureBucket(context.Background(), bucket); err != nil {
		t.Fatal(err)
	}
	return st, bucket
}

// randomImage returns size pseudo-random bytes, different for each seed.
func randomImage(seed uint64, size int) []byte {
	var key [32]byte
	key[0], key[1] = byte(seed), byte(seed>>8)
	b := make([]byte, size)
	_, _ = rand.NewChaCha8(key).Read(b)
	return b
}

func upload(t testing.TB, st *storage.MinIO, bucket, key string, image []byte) {
	t.Helper()
	if _, err := st.Put(context.Background(), bucket, key, strings.NewReader(string(image)), int64(len(image)), ""); err != nil {
		t.Fatal(err)
	}
}

// harness is a download Server on a loopback listener and a Signer whose
// paths it serves. The signer's host is a placeholder (it refuses the
// listener's port, as it should): requests go to the listener with the
// signed path, as a device with a fixed port would send them.
type harness struct {
	http   *httptest.Server
	srv    *Server
	signer *Signer
	reg    *prometheus.Registry
	now    func() time.Time
}

func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	h := &harness{reg: prometheus.NewRegistry(), signer: mustSigner(t, "http://firmware.test", 15*time.Minute)}
	cfg.Secret, cfg.Registerer = testSecret, h.reg
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h.now = cfg.Now
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.srv, h.http = srv, httptest.NewServer(srv)
	t.Cleanup(h.http.Close)
	return h
}

// url returns the address of key's download on the test listener.
func (h *harness) url(t testing.TB, key string) string {
	return h.http.URL + pathOf(t, h.signer, key, h.now())
}

// get sends method to url with an optional Range and returns the response
// with its body read.
func (h *harness) get(t testing.TB, method, url, rangeHeader string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rangeHeader != "" {
		req.Header.Set("Range", rangeHeader)
	}
	resp, err := h.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s (Range %q): reading the body: %v", method, url, rangeHeader, err)
	}
	return resp, body
}

// requestsOf is the request counter of one reason.
func requestsOf(t testing.TB, h *harness, reason string) prometheus.Counter {
	t.Helper()
	code, ok := codeClass[reason]
	if !ok {
		t.Fatalf("unknown reason %q", reason)
	}
	return h.srv.metrics.requests.WithLabelValues(code, reason)
}
