package devicesim_test

import (
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/protocol"
	"github.com/otafleet/otafleet/internal/testserver"
)

// subscribeCounter counts SUBSCRIBE packets from device connections.
type subscribeCounter struct {
	mochi.HookBase
	n atomic.Int64
}

func (h *subscribeCounter) ID() string           { return "subscribe-counter" }
func (h *subscribeCounter) Provides(b byte) bool { return b == mochi.OnSubscribe }
func (h *subscribeCounter) OnSubscribe(cl *mochi.Client, pk packets.Packet) packets.Packet {
	if strings.Contains(string(cl.Properties.Username), "&") {
		h.n.Add(1)
	}
	return pk
}

func startSDK4(t *testing.T, devices int, hosts map[string]string) (*devicesim.Fleet, *backend, *rawRecorder, *subscribeCounter) {
	t.Helper()
	b := startBrokerWith(t, testserver.MochiOptions{AutoSubscribeOTA: true})
	subs := &subscribeCounter{}
	if err := b.Server().AddHook(subs, nil); err != nil {
		t.Fatal(err)
	}
	be := newBackend(t, b.URL)
	raw := recordRaw(t, b.URL)
	ctx := testContext(t)
	fleet, err := devicesim.Start(ctx, devicesim.Config{Broker: b.URL, ProductKey: pk, Devices: devices,
		Profile: devicesim.ProfileSDK4, Hosts: hosts, ProgressInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fleet.Stop)
	if err := fleet.WaitInformed(ctx); err != nil {
		t.Fatal(err)
	}
	return fleet, be, raw, subs
}

// TestSDK4FleetUpgradesWithoutSubscribing: 4.x devices never subscribe;
// the broker's auto-subscription delivers the push, they download in
// ranged halves over a new connection each (one download cut and resumed)
// and inform the new version.
func TestSDK4FleetUpgradesWithoutSubscribing(t *testing.T) {
	h := &hostTable{t: t, hosts: map[string]string{}}
	const size = 64 << 10
	img, u := firmware(size, "", protocol.SignSHA256)
	log := &requestLog{}
	u.URL = h.serve("fw.test", log.wrap(serveImage(img)))
	fleet, be, raw, subs := startSDK4(t, 3, h.hosts)
	for _, dn := range fleet.DeviceNames() {
		be.push(dn, u)
	}
	msgs := be.waitFor("every new version", func(m []protocol.Message) bool {
		return len(of(m, protocol.KindInform, "")) == 6
	})
	for _, dn := range fleet.DeviceNames() {
		if !informedVersion(msgs, dn, protocol.DefaultModule, "2.0.0") {
			t.Fatalf("%s did not inform the new version", dn)
		}
		for _, p := range raw.atLeast(protocol.ProgressTopic(pk, dn), 2) {
			if !strings.HasPrefix(p, `{"id":`) || strings.HasPrefix(p, `{"id":"`) {
				t.Fatalf("%s: progress %s without a numeric id", dn, p)
			}
		}
	}
	// A device records its success once its inform is acknowledged, which
	// may be after the backend saw it.
	if err := fleet.Wait(testContext(t), func(s devicesim.Summary) bool { return s.Outcomes[devicesim.OutcomeSucceeded] == 3 }); err != nil {
		t.Fatal(err)
	}
	s := fleet.Summary()
	if s.ContractViolations != 0 || subs.n.Load() != 0 {
		t.Fatalf("violations %v, %d device SUBSCRIBEs; summary:\n%s", s.Violations, subs.n.Load(), s)
	}
	checkRanges(t, log.all(), size, 3)
}

// checkRanges: two halves per device, one extra request resuming the cut
// one, a Range on each, a connection for each.
func checkRanges(t *testing.T, reqs []request, size, devices int) {
	t.Helper()
	count := map[string]int{}
	remotes := map[string]bool{}
	for _, r := range reqs {
		count[r.rng]++
		remotes[r.remote] = true
	}
	want := map[string]int{
		fmt.Sprintf("bytes=0-%d", size/2-1):          devices,
		fmt.Sprintf("bytes=%d-%d", size/4, size/2-1): 1,
		fmt.Sprintf("bytes=%d-", size/2):             devices,
	}
	if !maps.Equal(count, want) || len(remotes) != len(reqs) {
		t.Fatalf("ranges %v over %d connections, want %v over one connection each", count, len(remotes), want)
	}
}

// TestSDK4Violations: each server or push a 4.x device cannot use ends
// as it would in the field, and is counted.
func TestSDK4Violations(t *testing.T) {
	h := &hostTable{t: t, hosts: map[string]string{}}
	img, good := firmware(8<<10, "", protocol.SignMD5)
	good.URL = h.serve("good.test", serveImage(img))
	long := h.serve("long.test", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Padding", strings.Repeat("p", 130-len("X-Padding: "))) // a 130-character line
		serveImage(img)(w, r)
	})
	cases := []struct {
		url     string
		outcome devicesim.Outcome
		kind    devicesim.Violation
	}{
		{good.URL, devicesim.OutcomeSucceeded, ""},
		{h.serve("ignore.test", ignoreRange(img)), devicesim.OutcomeDownloadFailed, devicesim.ViolationRangeIgnored},
		{h.serve("chunked.test", chunkedImage(img)), devicesim.OutcomeDownloadFailed, devicesim.ViolationChunked},
		{h.serve("redirect.test", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, good.URL, http.StatusFound)
		}), devicesim.OutcomeDownloadFailed, devicesim.ViolationRedirect},
		{long, devicesim.OutcomeStuck, devicesim.ViolationLongHeader},
		{"http://good.test:80/fw/image.bin", devicesim.OutcomeStuck, devicesim.ViolationURLHost},
		{"http://good.test/" + strings.Repeat("a", 255), devicesim.OutcomeDownloadFailed, devicesim.ViolationURLTooLong},
	}
	fleet, be, _, _ := startSDK4(t, len(cases)+1, h.hosts)
	names := fleet.DeviceNames()
	want, wantV := map[devicesim.Outcome]int{devicesim.OutcomeIdle: 1}, map[devicesim.Violation]int64{}
	for i, c := range cases {
		u := good
		u.URL = c.url
		be.push(names[i], u)
		want[c.outcome]++
		if c.kind != "" {
			wantV[c.kind]++
		}
	}
	// extData first, with a url of its own: the device would read that one.
	payload, err := protocol.EncodePush(1, good)
	if err != nil {
		t.Fatal(err)
	}
	be.publish(protocol.UpgradeTopic(pk, names[len(cases)]),
		[]byte(strings.Replace(string(payload), `"data":{`, `"data":{"extData":{"url":"http://evil.test/x"},`, 1)))
	wantV[devicesim.ViolationPushUnreadable]++
	ctx := testContext(t)
	if err := fleet.Wait(ctx, func(s devicesim.Summary) bool {
		return maps.Equal(s.Outcomes, want) && maps.Equal(s.Violations, wantV)
	}); err != nil {
		s := fleet.Summary()
		t.Fatalf("%v\noutcomes %v, want %v\nviolations %v, want %v", err, s.Outcomes, want, s.Violations, wantV)
	}
}
