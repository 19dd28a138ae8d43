package download

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

const imageSize = 3<<20 + 12345 // a few MiB, not a multiple of the buffer

func TestDownloadFromMinIO(t *testing.T) {
	st, bucket := newStore(t)
	image := randomImage(1, imageSize)
	upload(t, st, bucket, uidKey, image)
	h := newHarness(t, Config{Bucket: bucket, Objects: st})
	url := h.url(t, uidKey)
	size := int64(len(image))

	tests := []struct {
		name, method, rangeHeader string
		status                    int
		start, end                int64 // inclusive; the expected body is image[start:end+1]
	}{
		{"whole", http.MethodGet, "", http.StatusOK, 0, size - 1},
		{"from zero", http.MethodGet, "bytes=0-", http.StatusPartialContent, 0, size - 1},
		{"prefix", http.MethodGet, "bytes=0-1023", http.StatusPartialContent, 0, 1023},
		{"middle", http.MethodGet, "bytes=1000000-1999999", http.StatusPartialContent, 1000000, 1999999},
		{"to the end", http.MethodGet, fmt.Sprintf("bytes=%d-", size-54321), http.StatusPartialContent, size - 54321, size - 1},
		{"end clamped", http.MethodGet, fmt.Sprintf("bytes=%d-%d", size-10, size+1000), http.StatusPartialContent, size - 10, size - 1},
		{"last byte", http.MethodGet, fmt.Sprintf("bytes=%d-", size-1), http.StatusPartialContent, size - 1, size - 1},
		{"suffix", http.MethodGet, "bytes=-100", http.StatusPartialContent, size - 100, size - 1},
		{"several ranges ignored", http.MethodGet, "bytes=0-1,5-9", http.StatusOK, 0, size - 1},
		{"malformed ignored", http.MethodGet, "bytes=x-", http.StatusOK, 0, size - 1},
		{"head", http.MethodHead, "", http.StatusOK, 0, size - 1},
		{"head with range", http.MethodHead, "bytes=100-199", http.StatusPartialContent, 100, 199},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := h.get(t, tt.method, url, tt.rangeHeader)
			checkImageResponse(t, resp, tt.status, tt.start, tt.end, size)
			if tt.method == http.MethodHead {
				if len(body) != 0 {
					t.Fatalf("HEAD answered a %d-byte body", len(body))
				}
				return
			}
			if want := image[tt.start : tt.end+1]; !bytes.Equal(body, want) {
				t.Fatalf("body: %d bytes that differ from image[%d:%d]", len(body), tt.start, tt.end+1)
			}
		})
	}
}

// checkImageResponse checks status and headers of a 200 or 206.
func checkImageResponse(t *testing.T, resp *http.Response, status int, start, end, size int64) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d", resp.StatusCode, status)
	}
	want := map[string]string{
		"Content-Type":   "application/octet-stream",
		"Accept-Ranges":  "bytes",
		"Content-Length": strconv.FormatInt(end-start+1, 10),
		"Cache-Control":  "no-store",
		"Content-Range":  "",
	}
	if status == http.StatusPartialContent {
		want["Content-Range"] = fmt.Sprintf("bytes %d-%d/%d", start, end, size)
	}
	for name, value := range want {
		if got := resp.Header.Get(name); got != value {
			t.Errorf("%s: %q, want %q", name, got, value)
		}
	}
	if len(resp.TransferEncoding) != 0 {
		t.Errorf("Transfer-Encoding %v, want none", resp.TransferEncoding)
	}
}

func TestResumeAfterCut(t *testing.T) {
	st, bucket := newStore(t)
	image := randomImage(2, imageSize)
	upload(t, st, bucket, uidKey, image)
	h := newHarness(t, Config{Bucket: bucket, Objects: st})
	url := h.url(t, uidKey)

	// A device reads part of the image, loses the connection...
	resp, err := h.http.Client().Get(url)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 1<<20+777)
	if _, err := io.ReadFull(resp.Body, got); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// ...and resumes from the bytes it has, as both SDK generations do.
	resp2, rest := h.get(t, http.MethodGet, url, fmt.Sprintf("bytes=%d-", len(got)))
	checkImageResponse(t, resp2, http.StatusPartialContent, int64(len(got)), imageSize-1, imageSize)
	if !bytes.Equal(append(got, rest...), image) {
		t.Fatal("the image put together from the cut download and the resumed one differs")
	}
}

func TestRefusals(t *testing.T) {
	st, bucket := newStore(t)
	upload(t, st, bucket, uidKey, randomImage(3, 1000))
	upload(t, st, bucket, "fw/empty.bin", nil)
	h := newHarness(t, Config{Bucket: bucket, Objects: st})
	good := h.url(t, uidKey)
	token := strings.Split(strings.TrimPrefix(good, h.http.URL), "/")[2]
	expired := h.http.URL + pathOf(t, h.signer, uidKey, time.Now().Add(-time.Hour))

	tests := []struct {
		name, method, url, rangeHeader string
		status                         int
		body, contentRange, reason     string
	}{
		{"forged mac", http.MethodGet, h.http.URL + "/f/" + flipLast(token) + "/" + uidKey, "", 403, "forbidden\n", "", reasonForbidden},
		{"other key", http.MethodGet, h.http.URL + "/f/" + token + "/fw/other.bin", "", 403, "forbidden\n", "", reasonForbidden},
		{"bad base64", http.MethodGet, h.http.URL + "/f/" + strings.Repeat("*", tokenChars) + "/" + uidKey, "", 403, "forbidden\n", "", reasonForbidden},
		{"root", http.MethodGet, h.http.URL + "/", "", 403, "forbidden\n", "", reasonForbidden},
		{"expired", http.MethodGet, expired, "", 403, "download link expired\n", "", reasonExpired},
		{"missing", http.MethodGet, h.url(t, "fw/missing.bin"), "", 404, "not found\n", "", reasonNotFound},
		{"missing head", http.MethodHead, h.url(t, "fw/missing.bin"), "", 404, "", "", reasonNotFound},
		{"past the end", http.MethodGet, good, "bytes=1000-", 416, "range not satisfiable\n", "bytes */1000", reasonRange},
		{"past the end head", http.MethodHead, good, "bytes=5000-5001", 416, "", "bytes */1000", reasonRange},
		{"empty object", http.MethodGet, h.url(t, "fw/empty.bin"), "bytes=0-", 416, "range not satisfiable\n", "bytes */0", reasonRange},
		{"post", http.MethodPost, good, "", 405, "method not allowed\n", "", reasonMethod},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := testutil.ToFloat64(requestsOf(t, h, tt.reason))
			resp, body := h.get(t, tt.method, tt.url, tt.rangeHeader)
			if resp.StatusCode != tt.status || string(body) != tt.body {
				t.Fatalf("answer %d %q, want %d %q", resp.StatusCode, body, tt.status, tt.body)
			}
			if got := resp.Header.Get("Content-Range"); got != tt.contentRange {
				t.Errorf("Content-Range %q, want %q", got, tt.contentRange)
			}
			if strings.Contains(string(body), bucket) {
				t.Errorf("the body %q names the bucket", body)
			}
			waitFor(t, "requests{reason="+tt.reason+"} +1", func() bool {
				return testutil.ToFloat64(requestsOf(t, h, tt.reason)) == before+1
			})
		})
	}
}

func flipLast(token string) string {
	last := token[len(token)-1]
	if last == 'A' {
		return token[:len(token)-1] + "B"
	}
	return token[:len(token)-1] + "A"
}
