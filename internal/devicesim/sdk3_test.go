package devicesim_test

import (
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/protocol"
)

// TestSDK3Profile: a 3.x device downloads from a correct server, and fails
// as in the field on a redirect, a chunked body, a URL with a port (it
// hangs) and a 256-byte path (it crashes); each violation is counted.
func TestSDK3Profile(t *testing.T) {
	b := startBroker(t) // 3.x subscribes itself: no help from the broker
	be := newBackend(t, b.URL)
	raw := recordRaw(t, b.URL)
	ctx := testContext(t)
	h := &hostTable{t: t, hosts: map[string]string{}}
	img, good := firmware(40<<10, "", protocol.SignMD5)
	good.URL = h.serve("good.test", serveImage(img))
	redirect := h.serve("redirect.test", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, good.URL, http.StatusFound)
	})
	chunked := h.serve("chunked.test", chunkedImage(img))
	fleet, err := devicesim.Start(ctx, devicesim.Config{Broker: b.URL, ProductKey: pk, Devices: 5, Mode: devicesim.PerDevice,
		Profile: devicesim.ProfileSDK3, Hosts: h.hosts, ProgressInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Stop()
	if err := fleet.WaitInformed(ctx); err != nil {
		t.Fatal(err)
	}
	names := fleet.DeviceNames()
	checkSDK3Informs(t, raw, names[0])
	cases := []struct {
		url     string
		outcome devicesim.Outcome
	}{
		{good.URL, devicesim.OutcomeSucceeded},
		{redirect, devicesim.OutcomeDownloadFailed},
		{chunked, devicesim.OutcomeDownloadFailed},
		{"http://good.test:80/fw/image.bin", devicesim.OutcomeStuck},
		{"http://good.test/" + strings.Repeat("a", 255), devicesim.OutcomeCrashed}, // a path of 256 bytes
	}
	want := map[devicesim.Outcome]int{}
	for i, c := range cases {
		u := good
		u.URL = c.url
		be.push(names[i], u)
		want[c.outcome]++
	}
	if err := fleet.Wait(ctx, func(s devicesim.Summary) bool {
		return maps.Equal(s.Outcomes, want) && s.ConnectionsUp == 4
	}); err != nil {
		t.Fatalf("%v; want outcomes %v and the crashed device's connection down", err, want)
	}
	s := fleet.Summary()
	wantV := map[devicesim.Violation]int64{devicesim.ViolationRedirect: 1, devicesim.ViolationChunked: 1,
		devicesim.ViolationURLHost: 1, devicesim.ViolationURLTooLong: 1}
	if s.ContractViolations != 4 || !maps.Equal(s.Violations, wantV) {
		t.Fatalf("violations %d %v, want 4 %v", s.ContractViolations, s.Violations, wantV)
	}
	msgs := be.waitFor("the new version", func(m []protocol.Message) bool {
		return informedVersion(m, names[0], protocol.DefaultModule, "2.0.0")
	})
	checkSDK3Progress(t, raw, msgs, names[0])
	// The hanging and the crashed device said step 0 and nothing more.
	for _, dn := range names[3:] {
		if p := of(msgs, protocol.KindProgress, dn); len(p) != 1 || p[0].Step != 0 {
			t.Errorf("%s: steps %s, want only 0", dn, steps(p))
		}
	}
}

// checkSDK3Informs: on connect, a string id and then a numeric one.
func checkSDK3Informs(t *testing.T, raw *rawRecorder, dn string) {
	t.Helper()
	informs := raw.atLeast(protocol.InformTopic(pk, dn), 2)
	if len(informs) != 2 || !strings.HasPrefix(informs[0], `{"id":"`) || strings.HasPrefix(informs[1], `{"id":"`) {
		t.Fatalf("boot informs %q: want one with a string id, then one with a numeric id", informs)
	}
}

// checkSDK3Progress: the SDK's own first report byte for byte, then a
// repeated step, then 100.
func checkSDK3Progress(t *testing.T, raw *rawRecorder, msgs []protocol.Message, dn string) {
	t.Helper()
	first := raw.atLeast(protocol.ProgressTopic(pk, dn), 1)
	if len(first) == 0 || first[0] != `{"id":0,"params":{"step":"0","desc":"Enter in downloading state"}}` {
		t.Fatalf("first progress %q", first)
	}
	p := of(msgs, protocol.KindProgress, dn)
	dup := false
	for i := 1; i < len(p); i++ {
		dup = dup || p[i].Step == p[i-1].Step
	}
	if !dup || p[len(p)-1].Step != protocol.StepDone {
		t.Fatalf("steps %s: want a repeated step and 100 last", steps(p))
	}
}
