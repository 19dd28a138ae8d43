package storage

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// imageReader returns a deterministic pseudo-random image of size bytes that
// is neither an io.ReaderAt nor an io.Seeker, like an HTTP body.
func imageReader(seed byte, size int64) io.Reader {
	var key [32]byte
	key[0] = seed
	return io.LimitReader(rand.NewChaCha8(key), size)
}

// heapPeak samples the live heap until stopped and reports the largest
// growth over the baseline taken at start.
type heapPeak struct {
	base, peak uint64
	stop       chan struct{}
	done       sync.WaitGroup
}

func startHeapPeak() *heapPeak {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h := &heapPeak{base: ms.HeapAlloc, peak: ms.HeapAlloc, stop: make(chan struct{})}
	h.done.Add(1)
	go func() {
		defer h.done.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-tick.C:
				runtime.ReadMemStats(&ms)
				h.peak = max(h.peak, ms.HeapAlloc)
			}
		}
	}()
	return h
}

// Stop returns the peak growth in bytes.
func (h *heapPeak) Stop() uint64 {
	close(h.stop)
	h.done.Wait()
	return h.peak - h.base
}

func TestPutLargeImageWithBoundedMemory(t *testing.T) {
	const size = 64 << 20
	st, bucket := newStore(t, "")

	src := NewHashingReader(imageReader(1, size))
	peak := startHeapPeak()
	info, err := st.Put(t.Context(), bucket, "fw/large.bin", src, size, "")
	growth := peak.Stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("64 MiB upload: peak heap growth %.1f MiB (part size %d MiB)",
		float64(growth)/(1<<20), DefaultPartSize>>20)
	// One part buffer plus signing and HTTP buffers; the whole image would
	// be 64 MiB.
	if limit := uint64(2 * DefaultPartSize); growth > limit {
		t.Errorf("peak heap growth %d bytes exceeds %d bytes", growth, limit)
	}
	if info.Size != size {
		t.Errorf("uploaded size %d, want %d", info.Size, size)
	}

	want := src.Digests()
	rc, got, err := st.Get(t.Context(), bucket, "fw/large.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if got.Size != size {
		t.Errorf("stored size %d, want %d", got.Size, size)
	}
	read, err := CopyAndHash(io.Discard, rc)
	if err != nil {
		t.Fatal(err)
	}
	if read != want {
		t.Errorf("read back %+v, uploaded %+v", read, want)
	}
}

func TestPutRefusesShortSource(t *testing.T) {
	st, bucket := newStore(t, "")
	_, err := st.Put(t.Context(), bucket, "short.bin", strings.NewReader("abc"), 10, "")
	if err == nil {
		t.Fatal("put of 3 bytes declared as 10 succeeded")
	}
	if _, err := st.Stat(t.Context(), bucket, "short.bin"); !errors.Is(err, ErrNotFound) {
		t.Errorf("stat after failed put: %v, want ErrNotFound", err)
	}
}

func TestPutStopsAtSize(t *testing.T) {
	st, bucket := newStore(t, "")
	src := strings.NewReader("0123456789")
	info, err := st.Put(t.Context(), bucket, "head.bin", src, 4, "")
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != 4 || src.Len() != 6 {
		t.Errorf("stored %d bytes, %d left in the source; want 4 and 6", info.Size, src.Len())
	}
}

func TestPresignedGetExpires(t *testing.T) {
	// Devices reach "localhost", the operator "127.0.0.1": the URL must be
	// signed for the former.
	public := "http://" + strings.Replace(server.Endpoint, "127.0.0.1", "localhost", 1)
	st, bucket := newStore(t, public)
	body := []byte("firmware image")
	if _, err := st.Put(t.Context(), bucket, "a.bin", bytes.NewReader(body), int64(len(body)), ""); err != nil {
		t.Fatal(err)
	}
	u, err := st.PresignGet(t.Context(), bucket, "a.bin", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if u.Host != st.PublicURL().Host {
		t.Fatalf("URL host %q, want the public host %q", u.Host, st.PublicURL().Host)
	}
	if code, got := httpGet(t, u.String()); code != http.StatusOK || !bytes.Equal(got, body) {
		t.Fatalf("GET before expiry: %d %q", code, got)
	}
	// The signature covers the host: the same URL on another host fails.
	other := *u
	other.Host = server.Endpoint
	if code, _ := httpGet(t, other.String()); code != http.StatusForbidden {
		t.Errorf("GET with another host: %d, want 403", code)
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _ := httpGet(t, u.String())
		if code == http.StatusForbidden {
			break
		}
		if code != http.StatusOK {
			t.Fatalf("GET while waiting for expiry: %d", code)
		}
		if time.Now().After(deadline) {
			t.Fatal("pre-signed URL still works 30s after a 2s expiry")
		}
		time.Sleep(100 * time.Millisecond) // polling interval, not synchronization
	}
}

func TestPresignedPut(t *testing.T) {
	st, bucket := newStore(t, "")
	u, err := st.PresignPut(t.Context(), bucket, "up.bin", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("uploaded by kubectl ota")
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, u.String(), bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT: %d", resp.StatusCode)
	}
	info, err := st.Stat(t.Context(), bucket, "up.bin")
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(body)) {
		t.Errorf("size %d, want %d", info.Size, len(body))
	}
}

func TestDeleteRemovesObject(t *testing.T) {
	st, bucket := newStore(t, "")
	if _, err := st.Put(t.Context(), bucket, "d.bin", strings.NewReader("x"), 1, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Stat(t.Context(), bucket, "d.bin"); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(t.Context(), bucket, "d.bin"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Stat(t.Context(), bucket, "d.bin"); !errors.Is(err, ErrNotFound) {
		t.Errorf("stat after delete: %v, want ErrNotFound", err)
	}
	if _, _, err := st.Get(t.Context(), bucket, "d.bin"); !errors.Is(err, ErrNotFound) {
		t.Errorf("get after delete: %v, want ErrNotFound", err)
	}
	if err := st.Delete(t.Context(), bucket, "d.bin"); err != nil {
		t.Errorf("second delete: %v", err)
	}
}

func TestEnsureBucket(t *testing.T) {
	st, bucket := newStore(t, "")
	if err := st.EnsureBucket(t.Context(), bucket); err != nil {
		t.Fatalf("second EnsureBucket: %v", err)
	}
	public := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["*"]},` +
		`"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::` + bucket + `/*"]}]}`
	if err := st.internal.SetBucketPolicy(t.Context(), bucket, public); err != nil {
		t.Fatal(err)
	}
	if err := st.EnsureBucket(t.Context(), bucket); err == nil {
		t.Error("EnsureBucket accepted a bucket readable by anyone")
	}
}

func TestWrongCredentialsAreSanitized(t *testing.T) {
	st, err := New(Config{Endpoint: server.Endpoint, Insecure: true,
		AccessKey: "wrong-access", SecretKey: "wrong-secret-key", CallTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Stat(context.Background(), "nobucket", "x")
	if err == nil {
		t.Fatal("stat with wrong credentials succeeded")
	}
	msg := st.Sanitize(err)
	if strings.Contains(msg, "wrong-secret-key") || strings.Contains(msg, "wrong-access") {
		t.Errorf("sanitized message leaks a credential: %q", msg)
	}
}

func httpGet(t *testing.T, u string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body
}

func TestCopy(t *testing.T) {
	st, bucket := newStore(t, "")
	body := "image to copy"
	if _, err := st.Put(t.Context(), bucket, "src.bin", strings.NewReader(body), int64(len(body)), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Copy(t.Context(), bucket, "src.bin", bucket, "dst/copy.bin"); err != nil {
		t.Fatal(err)
	}
	rc, _, err := st.Get(t.Context(), bucket, "dst/copy.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, _ := io.ReadAll(rc)
	if string(got) != body {
		t.Errorf("copy holds %q, want %q", got, body)
	}
	if _, err := st.Copy(t.Context(), bucket, "missing.bin", bucket, "x.bin"); !errors.Is(err, ErrNotFound) {
		t.Errorf("copy of a missing object: %v, want ErrNotFound", err)
	}
}
