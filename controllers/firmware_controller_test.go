package controllers

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/storage"
)

// memoryLimit is what the test process may grow by while the operator
// takes in a 64 MiB image: half the image. The whole image in memory
// would exceed it.
const memoryLimit = 32 << 20

func TestFirmwareUploadEndToEnd(t *testing.T) {
	ns := newNamespace(t, "fw-upload-")
	createProduct(t, ns, "prod", ns, "mcu")
	createFirmware(t, ns, "fw", otav1.FirmwareSource{Upload: &otav1.UploadSource{}})

	fw := waitFirmwareCondition(t, ns, "fw", otav1.ConditionReconciling, metav1.ConditionTrue, otav1.ReasonWaitingForUpload)
	if fw.Status.Artifact != nil {
		t.Fatalf("artifact before any upload: %+v", fw.Status.Artifact)
	}
	url := waitUploadURL(t, ns, "fw")
	if !strings.Contains(url, "//localhost:") {
		t.Errorf("upload URL %q is not signed for the device-facing host", url)
	}

	im := image{seed: 1, size: 64 << 20}
	peak := startHeapPeak()
	httpPut(t, url, im.reader(), im.size)
	fw = waitFirmwareReady(t, ns, "fw")
	growth := peak.Stop()
	t.Logf("64 MiB upload taken in: peak heap growth of the test process (manager included) %.1f MiB", float64(growth)/(1<<20))
	if growth > memoryLimit {
		t.Errorf("heap grew by %d bytes, limit %d", growth, memoryLimit)
	}

	checkArtifact(t, fw, im)
	if fw.Status.Upload != nil {
		t.Errorf("status.upload still set after the upload: %+v", fw.Status.Upload)
	}
	if fw.Status.ProductKey != ns {
		t.Errorf("status.productKey %q, want %q", fw.Status.ProductKey, ns)
	}
	if _, err := suite.store.Stat(t.Context(), suiteBucket, uploadKey(fw)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("upload object still there after it was taken in: %v", err)
	}
	// The suite's device-facing URL names a port: Ready says so.
	c := readyCondition(fw)
	if c.Reason != otav1.ReasonNonDefaultPort || !strings.Contains(c.Message, "port") {
		t.Errorf("Ready %s: %s; want the non-default port warning", c.Reason, c.Message)
	}
}

func TestFirmwareUploadDigestMismatchRefused(t *testing.T) {
	ns := newNamespace(t, "fw-upload-bad-")
	createProduct(t, ns, "prod", ns, "mcu")
	good := image{seed: 2, size: 1 << 20}
	_, goodSHA := good.digests(t)
	createFirmware(t, ns, "fw", otav1.FirmwareSource{Upload: &otav1.UploadSource{SHA256: goodSHA}})

	bad := image{seed: 3, size: 1 << 20}
	httpPut(t, waitUploadURL(t, ns, "fw"), bad.reader(), bad.size)
	fw := waitFirmwareCondition(t, ns, "fw", otav1.ConditionReady, metav1.ConditionFalse, otav1.ReasonDigestMismatch)
	if fw.Status.Artifact != nil {
		t.Errorf("refused image recorded: %+v", fw.Status.Artifact)
	}
	if _, err := suite.store.Stat(t.Context(), suiteBucket, artifactKey(fw)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("refused image still stored: %v", err)
	}

	// The uploader can try again with the right image.
	httpPut(t, waitUploadURL(t, ns, "fw"), good.reader(), good.size)
	checkArtifact(t, waitFirmwareReady(t, ns, "fw"), good)
}

// serveImage serves im over HTTP with a Content-Length, as a release
// server would.
func serveImage(t *testing.T, im image) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.FormatInt(im.size, 10))
		_, _ = io.Copy(w, im.reader())
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestFirmwareURLMirrored(t *testing.T) {
	ns := newNamespace(t, "fw-url-")
	createProduct(t, ns, "prod", ns, "mcu")
	im := image{seed: 4, size: 64 << 20}
	_, sha := im.digests(t)
	srv := serveImage(t, im)

	peak := startHeapPeak()
	createFirmware(t, ns, "fw", otav1.FirmwareSource{URL: &otav1.URLSource{URL: srv.URL + "/fw.bin", SHA256: sha}})
	fw := waitFirmwareReady(t, ns, "fw")
	growth := peak.Stop()
	t.Logf("64 MiB URL source mirrored: peak heap growth of the test process (manager and HTTP server included) %.1f MiB",
		float64(growth)/(1<<20))
	if growth > memoryLimit {
		t.Errorf("heap grew by %d bytes, limit %d", growth, memoryLimit)
	}
	checkArtifact(t, fw, im)
}

func TestFirmwareURLDigestMismatchRefused(t *testing.T) {
	ns := newNamespace(t, "fw-url-bad-")
	createProduct(t, ns, "prod", ns, "mcu")
	im := image{seed: 5, size: 256 << 10}
	srv := serveImage(t, im)
	_, otherSHA := image{seed: 6, size: 256 << 10}.digests(t)

	createFirmware(t, ns, "digest", otav1.FirmwareSource{URL: &otav1.URLSource{URL: srv.URL + "/a.bin", SHA256: otherSHA}})
	createFirmware(t, ns, "size", otav1.FirmwareSource{URL: &otav1.URLSource{URL: srv.URL + "/b.bin", SHA256: otherSHA, Size: im.size + 1}})
	for _, name := range []string{"digest", "size"} {
		fw := waitFirmwareCondition(t, ns, name, otav1.ConditionStalled, metav1.ConditionTrue, otav1.ReasonDigestMismatch)
		if c := readyCondition(fw); c == nil || c.Status != metav1.ConditionFalse {
			t.Errorf("%s: Ready %+v, want False", name, c)
		}
		if fw.Status.Artifact != nil {
			t.Errorf("%s: refused image recorded: %+v", name, fw.Status.Artifact)
		}
		if _, err := suite.store.Stat(t.Context(), suiteBucket, artifactKey(fw)); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s: refused image still stored: %v", name, err)
		}
	}
}

// serveChunked serves im without a Content-Length, as some servers do.
func serveChunked(t *testing.T, im image) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.(http.Flusher).Flush() // commits the headers without a length
		_, _ = io.Copy(w, im.reader())
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestFirmwareURLSizeChecks(t *testing.T) {
	ns := newNamespace(t, "fw-url-size-")
	createProduct(t, ns, "prod", ns, "mcu")
	im := image{seed: 10, size: 200 << 10}
	_, sha := im.digests(t)
	srv := serveChunked(t, im)
	url := func(size int64) otav1.FirmwareSource {
		return otav1.FirmwareSource{URL: &otav1.URLSource{URL: srv.URL + "/fw.bin", SHA256: sha, Size: size}}
	}
	createFirmware(t, ns, "stated", url(im.size))
	createFirmware(t, ns, "unknown", url(0))
	createFirmware(t, ns, "short", url(im.size+10))
	createFirmware(t, ns, "long", url(im.size-10))

	checkArtifact(t, waitFirmwareReady(t, ns, "stated"), im)
	waitFirmwareCondition(t, ns, "unknown", otav1.ConditionStalled, metav1.ConditionTrue, ReasonSourceUnusable)
	for name, words := range map[string]string{"short": "fewer bytes", "long": "more bytes"} {
		fw := waitFirmwareCondition(t, ns, name, otav1.ConditionStalled, metav1.ConditionTrue, otav1.ReasonDigestMismatch)
		if c := readyCondition(fw); !strings.Contains(c.Message, words) {
			t.Errorf("%s: message %q does not say %q", name, c.Message, words)
		}
		if _, err := suite.store.Stat(t.Context(), suiteBucket, artifactKey(fw)); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s: refused image still stored: %v", name, err)
		}
	}
}

func TestFirmwareObjectSourceAndDeletion(t *testing.T) {
	ns := newNamespace(t, "fw-object-")
	createProduct(t, ns, "prod", ns, "mcu")
	im := image{seed: 7, size: 3 << 20}
	srcBucket := "src-" + ns
	if err := suite.store.EnsureBucket(t.Context(), srcBucket); err != nil {
		t.Fatal(err)
	}
	if _, err := suite.store.Put(t.Context(), srcBucket, "builds/fw.bin", im.reader(), im.size, ""); err != nil {
		t.Fatal(err)
	}
	createFirmware(t, ns, "fw", otav1.FirmwareSource{Object: &otav1.ObjectSource{Bucket: srcBucket, Key: "builds/fw.bin"}})
	fw := waitFirmwareReady(t, ns, "fw")
	checkArtifact(t, fw, im)
	if !strings.Contains(strings.Join(fw.Finalizers, ","), FirmwareFinalizer) {
		t.Fatalf("finalizers %v lack %s", fw.Finalizers, FirmwareFinalizer)
	}

	if err := suite.k8s.Delete(t.Context(), fw); err != nil {
		t.Fatal(err)
	}
	waitFirmwareGone(t, fw)
	if _, err := suite.store.Stat(t.Context(), suiteBucket, artifactKey(fw)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("stored image survived the Firmware: %v", err)
	}
	// The source object is not the operator's to delete.
	if _, err := suite.store.Stat(t.Context(), srcBucket, "builds/fw.bin"); err != nil {
		t.Errorf("source object was touched: %v", err)
	}
}

func waitFirmwareGone(t *testing.T, fw *otav1.Firmware) {
	t.Helper()
	eventually(t, 30*time.Second, func() (bool, string) {
		err := suite.k8s.Get(t.Context(), client.ObjectKeyFromObject(fw), &otav1.Firmware{})
		return apierrors.IsNotFound(err), fmt.Sprintf("Firmware still exists (%v)", err)
	})
}
