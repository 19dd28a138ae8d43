package devicesim_test

import (
	"crypto/md5" //nolint:gosec // protocol digest
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/otafleet/otafleet/internal/protocol"
	"github.com/otafleet/otafleet/internal/testserver"
)

func startBrokerWith(t *testing.T, opts testserver.MochiOptions) *testserver.Mochi {
	t.Helper()
	b, err := testserver.StartMochi(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Stop() })
	return b
}

// firmware is an image of size bytes and an upgrade of it at url.
func firmware(size int, url string, method protocol.SignMethod) ([]byte, protocol.Upgrade) {
	img := make([]byte, size)
	for i := range img {
		img[i] = byte(i*13 + i/251)
	}
	m := md5.Sum(img) //nolint:gosec // protocol digest
	s := sha256.Sum256(img)
	u := protocol.Upgrade{Version: "2.0.0", URL: url, Size: int64(size), MD5: hex.EncodeToString(m[:]), SignMethod: method}
	u.Sign = u.MD5
	if method == protocol.SignSHA256 {
		u.Sign = hex.EncodeToString(s[:])
	}
	return img, u
}

// hostTable starts download servers, each under a host name of its own
// that Config.Hosts maps to the server's loopback address.
type hostTable struct {
	t     *testing.T
	hosts map[string]string
}

func (h *hostTable) serve(name string, handler http.HandlerFunc) string {
	srv := httptest.NewServer(handler)
	h.t.Cleanup(srv.Close)
	h.hosts[name] = srv.Listener.Addr().String()
	return "http://" + name + "/fw/image.bin"
}

// serveImage answers as a correct server does: Content-Length, Range.
func serveImage(img []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "image.bin", time.Time{}, strings.NewReader(string(img)))
	}
}

// chunkedImage answers a range with 206 but a chunked body.
func chunkedImage(img []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start, end := byteRange(r.Header.Get("Range"), len(img))
		if r.Header.Get("Range") != "" {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, len(img)))
			w.WriteHeader(http.StatusPartialContent)
		}
		_, _ = w.Write(img[start : start+1])
		w.(http.Flusher).Flush() // no Content-Length any more: chunked
		_, _ = w.Write(img[start+1 : end+1])
	}
}

// ignoreRange always answers 200 with the whole image.
func ignoreRange(img []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(img)))
		_, _ = w.Write(img)
	}
}

// byteRange reads "bytes=S-" or "bytes=S-E"; none means the whole image.
func byteRange(h string, size int) (start, end int) {
	s, e, _ := strings.Cut(strings.TrimPrefix(h, "bytes="), "-")
	start, _ = strconv.Atoi(s)
	end = size - 1
	if n, err := strconv.Atoi(e); err == nil {
		end = n
	}
	return start, end
}

// request is what a download server saw of one request.
type request struct {
	rng    string
	remote string
}

type requestLog struct {
	mu   sync.Mutex
	reqs []request
}

func (l *requestLog) wrap(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.reqs = append(l.reqs, request{r.Header.Get("Range"), r.RemoteAddr})
		l.mu.Unlock()
		h(w, r)
	}
}

func (l *requestLog) all() []request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]request(nil), l.reqs...)
}

// rawRecorder keeps the raw payloads devices publish, by topic, for
// checks byte for byte.
type rawRecorder struct {
	t       *testing.T
	mu      sync.Mutex
	msgs    map[string][]string
	changed chan struct{} // closed and replaced on every message
}

func recordRaw(t *testing.T, url string) *rawRecorder {
	t.Helper()
	r := &rawRecorder{t: t, msgs: map[string][]string{}, changed: make(chan struct{})}
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("raw-" + t.Name()).SetOrderMatters(true))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("raw recorder connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(50) })
	tok := c.Subscribe("/ota/device/+/"+pk+"/+", 1, func(_ paho.Client, m paho.Message) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.msgs[m.Topic()] = append(r.msgs[m.Topic()], string(m.Payload()))
		close(r.changed)
		r.changed = make(chan struct{})
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("raw recorder subscribe: %v", tok.Error())
	}
	return r
}

func (r *rawRecorder) of(topic string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs[topic]...)
}

// atLeast waits until n messages arrived on topic: the broker forwards
// them to the recorder after the device has its PUBACKs.
func (r *rawRecorder) atLeast(topic string, n int) []string {
	r.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		r.mu.Lock()
		got, ch := append([]string(nil), r.msgs[topic]...), r.changed
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-ch:
		case <-deadline:
			r.t.Fatalf("timed out waiting for %d messages on %s; have %q", n, topic, got)
		}
	}
}
