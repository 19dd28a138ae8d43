package download

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/otafleet/otafleet/internal/storage"
)

// failingObjects is a store that breaks: before the body (openErr) or after
// `good` bytes of an object that claims `size`. MinIO cannot be made to
// fail mid-body on demand, so this is the one fake of the package.
type failingObjects struct {
	openErr    error
	good, size int64
}

func (f failingObjects) GetRange(_ context.Context, bucket, key string, offset, _ int64) (io.ReadCloser, storage.ObjectInfo, error) {
	if f.openErr != nil {
		return nil, storage.ObjectInfo{}, f.openErr
	}
	body := io.MultiReader(io.LimitReader(zeros{}, f.good-offset), errReader{})
	return io.NopCloser(body), storage.ObjectInfo{Bucket: bucket, Key: key, Size: f.size}, nil
}

func (f failingObjects) Stat(context.Context, string, string) (storage.ObjectInfo, error) {
	return storage.ObjectInfo{Size: f.size}, f.openErr
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset by the store") }

func TestStoreFailsMidBody(t *testing.T) {
	h := newHarness(t, Config{Bucket: "secret-bucket", Objects: failingObjects{good: 100 << 10, size: 1 << 20}})
	resp, err := h.http.Client().Get(h.url(t, uidKey))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != 1<<20 {
		t.Fatalf("answer %d with length %d, want 200 with %d", resp.StatusCode, resp.ContentLength, 1<<20)
	}
	// The device must see a short read, not a complete-looking body.
	n, err := io.Copy(io.Discard, resp.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) || n < 100<<10-copyBufferBytes || n >= 1<<20 {
		t.Fatalf("read %d bytes, error %v; want a short read of about %d bytes and an unexpected EOF", n, err, 100<<10)
	}
	waitFor(t, "store_error counted", func() bool {
		return testutil.ToFloat64(requestsOf(t, h, reasonStoreError)) == 1
	})
	waitFor(t, "no download in flight", func() bool { return testutil.ToFloat64(h.srv.metrics.inFlight) == 0 })
}

func TestStoreFailsBeforeBody(t *testing.T) {
	h := newHarness(t, Config{Bucket: "secret-bucket", Objects: failingObjects{openErr: errors.New("dial tcp: secret-bucket unreachable")}})
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		resp, body := h.get(t, method, h.url(t, uidKey), "bytes=0-")
		if resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(string(body), "secret") {
			t.Fatalf("%s: answer %d %q, want 503 without the store's error", method, resp.StatusCode, body)
		}
	}
	waitFor(t, "two store errors counted", func() bool {
		return testutil.ToFloat64(requestsOf(t, h, reasonStoreError)) == 2
	})
}

func TestEgressCap(t *testing.T) {
	st, bucket := newStore(t)
	image := randomImage(4, 512<<10)
	upload(t, st, bucket, uidKey, image)
	// A low cap, so that the cap and not a busy machine sets the pace: two
	// images take about 4 s at the cap and well under 1 s without it.
	const capBytes = 256 << 10
	h := newHarness(t, Config{Bucket: bucket, Objects: st, EgressBytesPerSecond: capBytes})
	url := h.url(t, uidKey)

	// Two devices at once share the one cap.
	start := time.Now()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if resp, body := h.get(t, http.MethodGet, url, ""); resp.StatusCode != 200 || len(body) != len(image) {
				t.Errorf("answer %d with %d bytes", resp.StatusCode, len(body))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	total := float64(2 * len(image))
	// The limiter lets its burst through at once; the rest waits for the cap.
	floor := (total - float64(h.srv.limiter.Burst())) / capBytes
	t.Logf("%.1f MiB in %s: %.2f MiB/s, cap %.2f MiB/s", total/(1<<20), elapsed, total/(1<<20)/elapsed.Seconds(), float64(capBytes)/(1<<20))
	if elapsed.Seconds() < 0.9*floor {
		t.Fatalf("%.0f bytes took %s, faster than the %d bytes/s cap allows (%.2fs)", total, elapsed, capBytes, floor)
	}
	if elapsed > 30*time.Second {
		t.Fatalf("%.0f bytes took %s, far slower than the cap", total, elapsed)
	}
	waitFor(t, "bytes_total to count both images", func() bool {
		return testutil.ToFloat64(h.srv.metrics.bytes) == total
	})
}

func TestCacheControl(t *testing.T) {
	st, bucket := newStore(t)
	upload(t, st, bucket, uidKey, randomImage(5, 1000))
	now := time.Now()
	h := newHarness(t, Config{Bucket: bucket, Objects: st, CacheControl: true, Now: func() time.Time { return now }})
	_, expiry, err := verifyPath(testSecret, pathOf(t, h.signer, uidKey, now), now)
	if err != nil {
		t.Fatal(err)
	}
	resp, _ := h.get(t, http.MethodGet, h.url(t, uidKey), "")
	want := "public, max-age=" + strconv.FormatInt(int64(expiry.Sub(now)/time.Second), 10)
	if got := resp.Header.Get("Cache-Control"); got != want {
		t.Fatalf("Cache-Control %q, want %q (a CDN must not keep it past the URL's expiry)", got, want)
	}
}

// waitFor polls cond until it holds or a deadline passes: the server counts
// a request after the client has seen its end.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
