package appapi

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/prometheus/client_golang/prometheus"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// fixture is a server over a fake engine with alice's devices: pk/a1 and
// pk/a2 administered (both waiting for confirmation), pk/s1 shared
// read-only, and bob's pk/b1 that alice must not reach.
type fixture struct {
	eng   *fakeEngine
	url   string
	reg   *prometheus.Registry
	alice string
}

func newFixture(t *testing.T, mutate func(*Config)) *fixture {
	t.Helper()
	f := &fixture{eng: newFake(), reg: prometheus.NewRegistry()}
	f.eng.add("pk/a1", otav1.TaskConfirm, true)
	f.eng.add("pk/a2", otav1.TaskConfirm, true)
	f.eng.add("pk/s1", otav1.TaskConfirm, true)
	f.eng.add("pk/b1", otav1.TaskConfirm, true)
	cfg := testConfig()
	cfg.Registerer = f.reg
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg, f.eng)
	if err != nil {
		t.Fatal(err)
	}
	f.url = serve(t, s)
	cl := claims("alice", "pk/a1", "pk/a2")
	cl.Shared = []string{"pk/s1"}
	f.alice = hmacToken(t, cl)
	return f
}

func (f *fixture) untouched(t *testing.T) {
	t.Helper()
	if c, x := f.eng.calls(); c+x != 0 {
		t.Fatalf("the engine was asked to confirm %d and cancel %d devices", c, x)
	}
	for _, d := range []string{"pk/a1", "pk/a2", "pk/s1", "pk/b1"} {
		if st := f.eng.state(d); st != otav1.TaskConfirm {
			t.Fatalf("%s is %s", d, st)
		}
	}
}

func TestEnvelopeOnSuccessAndErrors(t *testing.T) {
	f := newFixture(t, nil)
	rep := call(t, f.url, PathProgressGet, f.alice, ref("pk/a1")).want(t, http.StatusOK)
	if ct := rep.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("content type %q", ct)
	}
	p := decodeData[ProgressItem](t, rep)
	if p.State != otav1.TaskConfirm || p.ProductKey != "pk" || p.DeviceName != "a1" || p.ReadOnly {
		t.Fatalf("progress %+v", p)
	}

	rep = call(t, f.url, PathProgressGet, "", ref("pk/a1")).want(t, http.StatusUnauthorized)
	if !strings.HasPrefix(rep.header.Get("WWW-Authenticate"), "Bearer") || len(rep.Data) != 0 {
		t.Fatalf("401 without a challenge or with data: %+v", rep)
	}
	call(t, f.url, "/living/ota/nothing", f.alice, nil).want(t, http.StatusNotFound)
	req, _ := http.NewRequest(http.MethodGet, f.url+PathConfirm, nil)
	if rep := do(t, http.DefaultClient, req).want(t, http.StatusMethodNotAllowed); rep.header.Get("Allow") != "POST" {
		t.Fatalf("Allow %q", rep.header.Get("Allow"))
	}
	if n := counterValue(t, f.reg, "otafleet_appapi_auth_failures_total", map[string]string{"reason": "missing"}); n != 1 {
		t.Fatalf("%v missing-token failures counted", n)
	}
	if n := counterValue(t, f.reg, "otafleet_appapi_requests_total", map[string]string{"endpoint": "progress_get", "code": "200"}); n != 1 {
		t.Fatalf("%v successful progress_get counted", n)
	}
}

func TestExpiredTokenSaysSo(t *testing.T) {
	f := newFixture(t, nil)
	c := claims("alice", "pk/a1")
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour))
	rep := call(t, f.url, PathConfirm, hmacToken(t, c), refs("pk/a1")).want(t, http.StatusUnauthorized)
	if rep.Message != "token expired" {
		t.Fatalf("message %q", rep.Message)
	}
	f.untouched(t)
}

func TestBadBodies(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxBodyBytes = 1024 })
	big := fmt.Sprintf(`{"devices":[{"productKey":"pk","deviceName":"a1"}],"pad":"%s"}`, strings.Repeat("x", 2000))
	call(t, f.url, PathConfirm, f.alice, big).want(t, http.StatusRequestEntityTooLarge)
	// Without a Content-Length the limit is met while reading.
	req, _ := http.NewRequest(http.MethodPost, f.url+PathConfirm, io.MultiReader(strings.NewReader(big)))
	req.Header.Set("Authorization", "Bearer "+f.alice)
	req.ContentLength = -1
	do(t, http.DefaultClient, req).want(t, http.StatusRequestEntityTooLarge)

	for name, body := range map[string]string{
		"not JSON":      `{"devices":`,
		"unknown field": `{"device":[{"productKey":"pk","deviceName":"a1"}]}`,
		"trailing data": `{"devices":[{"productKey":"pk","deviceName":"a1"}]} {}`,
		"wrong type":    `{"devices":"pk/a1"}`,
		"bad name":      `{"devices":[{"productKey":"pk","deviceName":"a/1"}]}`,
		"empty name":    `{"devices":[{"productKey":"pk","deviceName":""}]}`,
		"no devices":    `{}`,
	} {
		t.Run(name, func(t *testing.T) {
			call(t, f.url, PathConfirm, f.alice, body).want(t, http.StatusBadRequest)
		})
	}
	f.untouched(t)
}

func TestConfirmAtMost20Devices(t *testing.T) {
	f := newFixture(t, nil)
	var names []string
	for i := range 21 {
		n := fmt.Sprintf("pk/m%02d", i)
		names = append(names, n)
		f.eng.add(n, otav1.TaskConfirm, true)
	}
	tok := hmacToken(t, claims("alice", names...))
	rep := call(t, f.url, PathConfirm, tok, refs(names...)).want(t, http.StatusBadRequest)
	if !strings.Contains(rep.Message, "20") {
		t.Fatalf("message %q", rep.Message)
	}
	if c, _ := f.eng.calls(); c != 0 {
		t.Fatalf("%d devices confirmed", c)
	}
	items := decodeData[Items[ConfirmItem]](t, call(t, f.url, PathConfirm, tok, refs(names[:20]...)).want(t, http.StatusOK))
	if len(items.Items) != 20 || f.eng.state(names[19]) != otav1.TaskQueued || f.eng.state(names[20]) != otav1.TaskConfirm {
		t.Fatalf("20 devices: %+v", items)
	}
}

func TestForeignDeviceRefusesTheWholeRequest(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct {
		path string
		body any
	}{
		{PathConfirm, refs("pk/a1", "pk/b1", "pk/a2")},
		{PathCancel, ref("pk/b1")},
		{PathProgressGet, ref("pk/b1")},
		{PathProgressList, refs("pk/a1", "pk/b1")},
		{PathFirmwareGet, refs("pk/b1")},
		{PathDevicesList, refs("pk/b1")},
		// A device that does not exist gets the same answer.
		{PathProgressGet, ref("pk/nobody")},
	} {
		rep := call(t, f.url, tc.path, f.alice, tc.body).want(t, http.StatusForbidden)
		if !strings.Contains(rep.Message, "not bound to this user") {
			t.Fatalf("%s: message %q", tc.path, rep.Message)
		}
	}
	f.untouched(t)
}

func TestReadOnlyDevice(t *testing.T) {
	f := newFixture(t, nil)
	p := decodeData[ProgressItem](t, call(t, f.url, PathProgressGet, f.alice, ref("pk/s1")).want(t, http.StatusOK))
	if !p.ReadOnly || p.State != otav1.TaskConfirm {
		t.Fatalf("shared device %+v", p)
	}
	call(t, f.url, PathConfirm, f.alice, refs("pk/a1", "pk/s1")).want(t, http.StatusForbidden)
	call(t, f.url, PathCancel, f.alice, ref("pk/s1")).want(t, http.StatusForbidden)
	f.untouched(t)
}

func TestConfirmChecksEveryDeviceFirst(t *testing.T) {
	f := newFixture(t, nil)
	f.eng.add("pk/a2", otav1.TaskFailed, true)
	call(t, f.url, PathConfirm, f.alice, refs("pk/a1", "pk/a2")).want(t, http.StatusNotFound)
	f.eng.add("pk/a2", "", false) // known, no task
	call(t, f.url, PathConfirm, f.alice, refs("pk/a1", "pk/a2")).want(t, http.StatusNotFound)
	if c, _ := f.eng.calls(); c != 0 || f.eng.state("pk/a1") != otav1.TaskConfirm {
		t.Fatalf("%d confirms; a1 is %s", c, f.eng.state("pk/a1"))
	}
	// Confirming twice is fine: apps retry.
	f.eng.add("pk/a2", otav1.TaskQueued, true)
	items := decodeData[Items[ConfirmItem]](t, call(t, f.url, PathConfirm, f.alice, refs("pk/a1", "pk/a2", "pk/a1")).want(t, http.StatusOK))
	if len(items.Items) != 2 || items.Items[0].Message != "confirmed" || items.Items[1].Message != "already confirmed" {
		t.Fatalf("items %+v", items)
	}
	if c, _ := f.eng.calls(); c != 1 {
		t.Fatalf("%d confirms, want 1", c)
	}
}

func TestCancel(t *testing.T) {
	f := newFixture(t, nil)
	p := decodeData[ProgressItem](t, call(t, f.url, PathCancel, f.alice, ref("pk/a1")).want(t, http.StatusOK))
	if p.State != otav1.TaskCanceled || f.eng.state("pk/a1") != otav1.TaskCanceled {
		t.Fatalf("after cancel %+v", p)
	}
	call(t, f.url, PathCancel, f.alice, ref("pk/a1")).want(t, http.StatusNotFound)
}

func TestListsMapStates(t *testing.T) {
	f := newFixture(t, nil)
	f.eng.add("pk/a2", otav1.TaskSucceeded, true)
	f.eng.add("pk/s1", otav1.TaskInProgress, false)
	fw := decodeData[Items[FirmwareItem]](t, call(t, f.url, PathFirmwareGet, f.alice, nil).want(t, http.StatusOK))
	if len(fw.Items) != 3 {
		t.Fatalf("firmware items %+v", fw)
	}
	a1, a2, s1 := fw.Items[0], fw.Items[1], fw.Items[2]
	if a1.Status != StatusToBeUpgraded || !a1.NeedConfirm || a1.Size != 4096 || a1.SignMethod != "Md5" ||
		a1.TargetVersion != "2.0.0" || a1.CurrentVersion != "1.0.0" || a1.ReadOnly {
		t.Fatalf("a1 %+v", a1)
	}
	if a2.Status != StatusSucceeded || a2.NeedConfirm {
		t.Fatalf("a2 %+v", a2)
	}
	if s1.Status != StatusToBeUpgraded || s1.NeedConfirm || !s1.ReadOnly {
		t.Fatalf("s1 %+v", s1)
	}
	f.eng.add("pk/a2", otav1.TaskFailed, true)
	fw = decodeData[Items[FirmwareItem]](t, call(t, f.url, PathFirmwareGet, f.alice, nil).want(t, http.StatusOK))
	if len(fw.Items) != 2 {
		t.Fatalf("a failed upgrade is not pending: %+v", fw)
	}
	dl := decodeData[Items[ProgressItem]](t, call(t, f.url, PathDevicesList, f.alice, "").want(t, http.StatusOK))
	if len(dl.Items) != 2 || dl.Items[0].DeviceName != "a1" || dl.Items[1].DeviceName != "s1" {
		t.Fatalf("devices upgrading %+v", dl)
	}
	pl := decodeData[Items[ProgressItem]](t, call(t, f.url, PathProgressList, f.alice, refs("pk/a2")).want(t, http.StatusOK))
	if len(pl.Items) != 1 || pl.Items[0].State != otav1.TaskFailed {
		t.Fatalf("progress %+v", pl)
	}
}

func TestRateLimitPerUser(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.RatePerSecond, c.Burst = 0.01, 3 })
	for range 3 {
		call(t, f.url, PathProgressList, f.alice, nil).want(t, http.StatusOK)
	}
	rep := call(t, f.url, PathProgressList, f.alice, nil).want(t, http.StatusTooManyRequests)
	if rep.header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	// Another user has a bucket of its own.
	call(t, f.url, PathProgressList, hmacToken(t, claims("bob", "pk/b1")), nil).want(t, http.StatusOK)
	if n := counterValue(t, f.reg, "otafleet_appapi_rate_limited_total", nil); n != 1 {
		t.Fatalf("%v rate-limited requests counted", n)
	}
}

func TestEngineNotReady(t *testing.T) {
	f := newFixture(t, nil)
	f.eng.mu.Lock()
	f.eng.notReady = true
	f.eng.mu.Unlock()
	call(t, f.url, PathProgressList, f.alice, nil).want(t, http.StatusServiceUnavailable)
}

func TestTLS(t *testing.T) {
	cert, key := selfSigned(t)
	f := newFixture(t, func(c *Config) { c.TLSCertPEM, c.TLSKeyPEM = cert, key })
	if !strings.HasPrefix(f.url, "https://") {
		t.Fatal(f.url)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest(http.MethodPost, f.url+PathProgressList, nil)
	req.Header.Set("Authorization", "Bearer "+f.alice)
	do(t, client, req).want(t, http.StatusOK)
	// Plain HTTP to the TLS port gets nowhere.
	if resp, err := http.Post("http://"+strings.TrimPrefix(f.url, "https://")+PathProgressList, "application/json", nil); err == nil {
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP served")
		}
	}
}

// shardedFake owns some products only, as a replica owning products by
// Lease does, and knows which app API serves the others.
type shardedFake struct {
	*fakeEngine
	owned  map[string]bool
	owners map[string]string
}

func (s shardedFake) Owns(pk string) bool { return s.owned[pk] }

func (s shardedFake) OwnerURL(pk string) (string, bool) {
	u, ok := s.owners[pk]
	return u, ok
}

// A replica that does not own a caller's product forwards the request to
// the one that does, once; when that is not known (or the request was
// forwarded already) it says so (503, retry) rather than that the device
// has no upgrade.
func TestProductOfAnotherReplica(t *testing.T) {
	start := func(eng shardedFake) string {
		eng.add("pk/a1", otav1.TaskConfirm, true)
		s, err := New(testConfig(), eng)
		if err != nil {
			t.Fatal(err)
		}
		return serve(t, s)
	}
	token := hmacToken(t, claims("alice", "pk/a1"))
	owner := start(shardedFake{newFake(), map[string]bool{"pk": true}, nil})
	call(t, owner, PathProgressList, token, nil).want(t, http.StatusOK)

	other := start(shardedFake{newFake(), nil, map[string]string{"pk": owner}})
	rep := call(t, other, PathProgressList, token, nil).want(t, http.StatusOK)
	if !strings.Contains(string(rep.Data), "pk") {
		t.Errorf("the forwarded answer holds no device: %s", rep.Data)
	}

	lost := start(shardedFake{newFake(), nil, nil})
	rep = call(t, lost, PathProgressList, token, nil).want(t, http.StatusServiceUnavailable)
	if rep.header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	// Forwarded to a replica that does not own the product either (it
	// just moved): no second hop.
	moved := start(shardedFake{newFake(), nil, map[string]string{"pk": lost}})
	call(t, moved, PathProgressList, token, nil).want(t, http.StatusServiceUnavailable)
}
