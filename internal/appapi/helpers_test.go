package appapi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	testIssuer   = "https://app.example"
	testAudience = "otafleet"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef-test-secret")

// testKeys are generated once: RSA generation is slow under -race.
var testKeys = sync.OnceValue(func() (k struct {
	rsa   *rsa.PrivateKey
	ec256 *ecdsa.PrivateKey
	ec384 *ecdsa.PrivateKey
	ed    ed25519.PrivateKey
},
) {
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.ec256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	if k.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		panic(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	return k
})

// claims returns valid claims for user with administered devices.
func claims(user string, devices ...string) *Claims {
	now := time.Now()
	return &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: testIssuer, Audience: jwt.ClaimStrings{testAudience}, Subject: user,
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
		},
		Devices: devices,
	}
}

func sign(t testing.TB, m jwt.SigningMethod, key any, c *Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatalf("signing: %v", err)
	}
	return s
}

func hmacToken(t testing.TB, c *Claims) string { return sign(t, jwt.SigningMethodHS256, testSecret, c) }

func testConfig() Config {
	return Config{
		Keys: Keys{HMACSecret: testSecret}, Issuer: testIssuer, Audience: testAudience,
		RatePerSecond: 1000, Burst: 1000, Registerer: prometheus.NewRegistry(),
	}
}

// serve runs s on a loopback port until the test ends and returns its URL.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	scheme := "http://"
	if s.tls != nil {
		scheme = "https://"
	}
	return scheme + ln.Addr().String()
}

// reply is an answer in the envelope, data left raw.
type reply struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`

	status int
	header http.Header
}

func call(t *testing.T, base, path, token string, body any) reply {
	t.Helper()
	var r io.Reader = http.NoBody
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	case string:
		r = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(http.MethodPost, base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return do(t, http.DefaultClient, req)
}

func do(t *testing.T, c *http.Client, req *http.Request) reply {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var rep reply
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatalf("%s %s: answer not in the envelope: %v", req.Method, req.URL.Path, err)
	}
	rep.status, rep.header = resp.StatusCode, resp.Header
	if rep.Code != resp.StatusCode {
		t.Fatalf("%s: envelope code %d, HTTP status %d", req.URL.Path, rep.Code, resp.StatusCode)
	}
	return rep
}

func (r reply) want(t *testing.T, status int) reply {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d (%q), want %d", r.status, r.Message, status)
	}
	if status == http.StatusOK && r.Message != "success" {
		t.Fatalf("success with message %q", r.Message)
	}
	return r
}

func decodeData[T any](t *testing.T, r reply) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.Data, &v); err != nil {
		t.Fatalf("data %s: %v", r.Data, err)
	}
	return v
}

func ref(s string) DeviceRef {
	pk, dn, _ := strings.Cut(s, "/")
	return DeviceRef{pk, dn}
}

func refs(ss ...string) DevicesRequest {
	var r DevicesRequest
	for _, s := range ss {
		r.Devices = append(r.Devices, ref(s))
	}
	return r
}

// sseEvent is one server-sent event.
type sseEvent struct{ ID, Event, Data string }

// sseClient reads a progress stream on its own goroutine.
type sseClient struct {
	resp   *http.Response
	events chan sseEvent
}

func openStream(t *testing.T, base, token string) (*sseClient, *http.Response) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+PathProgressStream, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		return nil, resp
	}
	c := &sseClient{resp: resp, events: make(chan sseEvent, 1<<16)}
	go func() {
		defer close(c.events)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			field, value, _ := strings.Cut(line, ": ")
			switch {
			case line == "":
				if ev.Event != "" {
					c.events <- ev
				}
				ev = sseEvent{}
			case field == "id":
				ev.ID = value
			case field == "event":
				ev.Event = value
			case field == "data":
				ev.Data = value
			}
		}
	}()
	return c, resp
}

// next returns the next event, failing the test after a deadline; ok is
// false when the stream ended.
func (c *sseClient) next(t *testing.T) (sseEvent, bool) {
	t.Helper()
	select {
	case ev, ok := <-c.events:
		return ev, ok
	case <-time.After(20 * time.Second):
		t.Fatal("no stream event within 20s")
	}
	return sseEvent{}, false
}

// untilSynced returns the snapshot events.
func (c *sseClient) untilSynced(t *testing.T) []ProgressItem {
	t.Helper()
	var out []ProgressItem
	for {
		ev, ok := c.next(t)
		if !ok {
			t.Fatal("the stream ended before it was synced")
		}
		if ev.Event == EventSynced {
			return out
		}
		if ev.Event != EventProgress || ev.ID != "" {
			t.Fatalf("snapshot event %+v", ev)
		}
		var p ProgressItem
		if err := json.Unmarshal([]byte(ev.Data), &p); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
}

// eventually polls cond until it holds or a deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// counterValue reads a counter or gauge from a registry; labels match
// when all given ones are equal.
func counterValue(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue metric
				}
			}
			if c := m.GetCounter(); c != nil {
				sum += c.GetValue()
			} else if g := m.GetGauge(); g != nil {
				sum += g.GetValue()
			}
		}
	}
	return sum
}

var otherRSAKey = sync.OnceValue(func() *rsa.PrivateKey { return must(rsa.GenerateKey(rand.Reader, 2048)) })

func otherRSA(testing.TB) *rsa.PrivateKey { return otherRSAKey() }
