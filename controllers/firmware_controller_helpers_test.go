package controllers

import (
	"bytes"
	"crypto/md5" //nolint:gosec // the protocol's digest, checked independently of the controller
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

func init() {
	registerForSuite(func(mgr ctrl.Manager) error {
		return (&FirmwareReconciler{
			Client:             mgr.GetClient(),
			Store:              suite.store,
			Bucket:             suiteBucket,
			UploadPollInterval: 200 * time.Millisecond,
			UploadURLExpiry:    5 * time.Minute,
			// TestFirmwareFromObjectSource reads another bucket, as
			// an admin may allow.
			SharedObjectPrefixes: []string{"src-fw-object-"},
		}).SetupWithManager(mgr)
	})
}

// image is a deterministic pseudo-random firmware image.
type image struct {
	seed byte
	size int64
}

// reader streams the image; it is neither an io.ReaderAt nor an io.Seeker,
// like a network body.
func (im image) reader() io.Reader {
	var key [32]byte
	key[0] = im.seed
	return io.LimitReader(rand.NewChaCha8(key), im.size)
}

// digests computes MD5 and SHA-256 with the standard library, independently
// of the code under test.
func (im image) digests(t *testing.T) (md5Hex, sha256Hex string) {
	t.Helper()
	m, s := md5.New(), sha256.New() //nolint:gosec // see import
	if _, err := io.Copy(io.MultiWriter(m, s), im.reader()); err != nil {
		t.Fatal(err)
	}
	return hexSum(m), hexSum(s)
}

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

func createProduct(t *testing.T, ns, name, key string, modules ...string) *otav1.Product {
	t.Helper()
	p := &otav1.Product{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       otav1.ProductSpec{ProductKey: key, Modules: modules},
	}
	if err := suite.k8s.Create(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	return p
}

func createFirmware(t *testing.T, ns, name string, src otav1.FirmwareSource, mutate ...func(*otav1.Firmware)) *otav1.Firmware {
	t.Helper()
	fw := &otav1.Firmware{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       otav1.FirmwareSpec{Product: "prod", Module: "mcu", Version: "2.0.0", Source: src},
	}
	for _, m := range mutate {
		m(fw)
	}
	if err := suite.k8s.Create(t.Context(), fw); err != nil {
		t.Fatal(err)
	}
	return fw
}

func getFirmware(t *testing.T, ns, name string) *otav1.Firmware {
	t.Helper()
	fw := &otav1.Firmware{}
	if err := suite.k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, fw); err != nil {
		t.Fatal(err)
	}
	return fw
}

// waitFirmwareCondition waits until the Firmware's condition has the status
// and reason, for its current generation, and returns the Firmware.
func waitFirmwareCondition(t *testing.T, ns, name, condType string, status metav1.ConditionStatus, reason string) *otav1.Firmware {
	t.Helper()
	var fw *otav1.Firmware
	eventually(t, 60*time.Second, func() (bool, string) {
		fw = getFirmware(t, ns, name)
		c := apimeta.FindStatusCondition(fw.Status.Conditions, condType)
		if c == nil {
			return false, fmt.Sprintf("no %s condition; conditions %+v", condType, fw.Status.Conditions)
		}
		ok := c.Status == status && (reason == "" || c.Reason == reason) && c.ObservedGeneration == fw.Generation
		return ok, fmt.Sprintf("%s=%s reason %s: %s", condType, c.Status, c.Reason, c.Message)
	})
	return fw
}

func waitFirmwareReady(t *testing.T, ns, name string) *otav1.Firmware {
	t.Helper()
	return waitFirmwareCondition(t, ns, name, otav1.ConditionReady, metav1.ConditionTrue, "")
}

func checkArtifact(t *testing.T, fw *otav1.Firmware, im image) {
	t.Helper()
	md5Hex, shaHex := im.digests(t)
	a := fw.Status.Artifact
	if a == nil {
		t.Fatal("status.artifact is empty")
	}
	if a.Size != im.size || a.MD5 != md5Hex || a.SHA256 != shaHex {
		t.Errorf("artifact %+v; want size %d md5 %s sha256 %s", *a, im.size, md5Hex, shaHex)
	}
	if a.Bucket != suiteBucket || a.Key != artifactKey(fw) {
		t.Errorf("artifact at %s/%s, want %s/%s", a.Bucket, a.Key, suiteBucket, artifactKey(fw))
	}
	info, err := suite.store.Stat(t.Context(), a.Bucket, a.Key)
	if err != nil {
		t.Fatalf("stored image: %v", err)
	}
	if info.Size != im.size {
		t.Errorf("stored image has %d bytes, want %d", info.Size, im.size)
	}
}

// httpPut sends body to a pre-signed URL with a known length.
func httpPut(t *testing.T, url string, body io.Reader, size int64) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		t.Fatalf("PUT to the pre-signed URL: %s %s", resp.Status, bytes.TrimSpace(msg))
	}
}

// waitUploadURL waits for the controller to publish a pre-signed PUT URL.
func waitUploadURL(t *testing.T, ns, name string) string {
	t.Helper()
	var url string
	eventually(t, 30*time.Second, func() (bool, string) {
		fw := getFirmware(t, ns, name)
		if fw.Status.Upload == nil {
			return false, "status.upload is empty"
		}
		url = fw.Status.Upload.URL
		return true, ""
	})
	if !strings.Contains(url, "X-Amz-Signature=") {
		t.Fatalf("upload URL %q is not pre-signed", url)
	}
	return url
}

// heapPeak samples the heap of the test process, which runs the manager,
// and reports the largest growth over the baseline taken at start.
type heapPeak struct {
	base, peak uint64
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startHeapPeak() *heapPeak {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h := &heapPeak{base: ms.HeapAlloc, peak: ms.HeapAlloc, stop: make(chan struct{})}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
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

func (h *heapPeak) Stop() uint64 {
	close(h.stop)
	h.wg.Wait()
	return h.peak - h.base
}
