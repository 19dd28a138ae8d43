package devicesim_test

import (
	"strings"
	"testing"
	"time"

	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/protocol"
)

func TestFleetInformsEveryModule(t *testing.T) {
	for _, mode := range []devicesim.ConnMode{devicesim.Multiplexed, devicesim.PerDevice} {
		t.Run(string(mode), func(t *testing.T) {
			b := startBroker(t)
			be := newBackend(t, b.URL)
			ctx := testContext(t)
			n := 300
			if mode == devicesim.PerDevice {
				n = 25
			}
			fleet, err := devicesim.Start(ctx, devicesim.Config{
				Broker: b.URL, ProductKey: pk, Devices: n, Mode: mode, Connections: 3,
				Modules: []devicesim.Module{{Name: "wifi", Version: "1.0.0"}, {Name: "mcu", Version: "2.1"}},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer fleet.Stop()
			if err := fleet.WaitInformed(ctx); err != nil {
				t.Fatal(err)
			}
			msgs := be.waitFor("every inform", func(m []protocol.Message) bool { return len(of(m, protocol.KindInform, "")) >= 2*n })
			for _, dn := range fleet.DeviceNames() {
				if !informedVersion(msgs, dn, "wifi", "1.0.0") || !informedVersion(msgs, dn, "mcu", "2.1") {
					t.Fatalf("%s did not inform both modules", dn)
				}
			}
			for _, m := range of(msgs, protocol.KindInform, "") {
				if m.ID == "" {
					t.Fatalf("inform without id: %+v", m)
				}
			}
			s := fleet.Summary()
			wantConns := 3
			if mode == devicesim.PerDevice {
				wantConns = n
			}
			if s.Informed != n || s.Connections != wantConns || s.Published != int64(2*n) || s.Outcomes[devicesim.OutcomeIdle] != n ||
				s.Versions["mcu"]["2.1"] != n {
				t.Fatalf("summary:\n%s", s)
			}
		})
	}
}

func TestUpgradeDownloadsVerifiesAndInforms(t *testing.T) {
	for _, method := range []protocol.SignMethod{protocol.SignMD5, protocol.SignSHA256} {
		t.Run(string(method), func(t *testing.T) {
			b := startBroker(t)
			be := newBackend(t, b.URL)
			ctx := testContext(t)
			u, _ := imageServer(t, 300<<10, method)
			u.Module = "mcu"
			fleet, err := devicesim.Start(ctx, devicesim.Config{
				Broker: b.URL, ProductKey: pk, Devices: 4, ProgressInterval: 20 * time.Millisecond,
				Modules: []devicesim.Module{{Name: "wifi", Version: "1.0.0"}, {Name: "mcu", Version: "1.0.0"}},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer fleet.Stop()
			if err := fleet.WaitInformed(ctx); err != nil {
				t.Fatal(err)
			}
			dn := fleet.DeviceNames()[1]
			be.push(dn, u)
			msgs := be.waitFor("the new version", func(m []protocol.Message) bool { return informedVersion(m, dn, "mcu", "2.0.0") })
			progress := of(msgs, protocol.KindProgress, dn)
			if len(progress) < 2 || progress[0].Step != 0 || progress[len(progress)-1].Step != 100 {
				t.Fatalf("progress steps %s: want 0 first and 100 last", steps(progress))
			}
			for i, p := range progress {
				if p.Module != "mcu" || (i > 0 && p.Step < progress[i-1].Step) {
					t.Fatalf("progress %+v out of order or for the wrong module", p)
				}
				if i > 0 && p.ReceivedAt.Sub(progress[i-1].ReceivedAt) < 0 {
					t.Fatal("reports reordered")
				}
			}
			if err := fleet.Wait(ctx, func(s devicesim.Summary) bool { return s.Outcomes[devicesim.OutcomeSucceeded] == 1 }); err != nil {
				t.Fatal(err)
			}
			st, _ := fleet.Device(dn)
			s := fleet.Summary()
			if st.Versions["mcu"] != "2.0.0" || st.Versions["wifi"] != "1.0.0" || s.Downloads != 1 ||
				s.DownloadedBytes != u.Size || s.InvalidReceived != 0 || s.Versions["mcu"]["2.0.0"] != 1 {
				t.Fatalf("device %+v\nsummary:\n%s", st, s)
			}
		})
	}
}

func TestRealVerificationFailures(t *testing.T) {
	b := startBroker(t)
	be := newBackend(t, b.URL)
	ctx := testContext(t)
	good, _ := imageServer(t, 10<<10, protocol.SignSHA256)
	fleet, err := devicesim.Start(ctx, devicesim.Config{Broker: b.URL, ProductKey: pk, Devices: 3, ProgressInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Stop()
	if err := fleet.WaitInformed(ctx); err != nil {
		t.Fatal(err)
	}
	names := fleet.DeviceNames()
	wrongDigest, wrongSize, missing := good, good, good
	wrongDigest.Sign = strings.Repeat("0", 64)
	wrongSize.Size++
	missing.URL = strings.Replace(good.URL, "image.bin", "nothing.bin", 1)
	cases := []struct {
		u    protocol.Upgrade
		step protocol.Step
		o    devicesim.Outcome
	}{
		{wrongDigest, protocol.StepVerifyFailed, devicesim.OutcomeDigestMismatch},
		{wrongSize, protocol.StepVerifyFailed, devicesim.OutcomeDigestMismatch},
		{missing, protocol.StepDownloadFailed, devicesim.OutcomeDownloadFailed},
	}
	for i, c := range cases {
		be.push(names[i], c.u)
	}
	for i, c := range cases {
		msgs := be.waitFor("a failure report", func(m []protocol.Message) bool {
			p := of(m, protocol.KindProgress, names[i])
			return len(p) > 0 && p[len(p)-1].Step < 0
		})
		p := of(msgs, protocol.KindProgress, names[i])
		if last := p[len(p)-1]; last.Step != c.step || last.Desc == "" {
			t.Errorf("%s: last report %+v, want step %d with a description", names[i], last, c.step)
		}
		if informedVersion(msgs, names[i], protocol.DefaultModule, "2.0.0") {
			t.Errorf("%s informed the new version after a failed verification", names[i])
		}
	}
	if err := fleet.Wait(ctx, func(s devicesim.Summary) bool {
		return s.Outcomes[devicesim.OutcomeDigestMismatch] == 2 && s.Outcomes[devicesim.OutcomeDownloadFailed] == 1
	}); err != nil {
		t.Fatal(err)
	}
}

// TestWildcardSubscriptions: every multiplexed connection receives every
// push, and only the device's own connection acts on it.
func TestWildcardSubscriptions(t *testing.T) {
	b := startBroker(t)
	be := newBackend(t, b.URL)
	ctx := testContext(t)
	u, _ := imageServer(t, 1<<10, protocol.SignMD5)
	fleet, err := devicesim.Start(ctx, devicesim.Config{Broker: b.URL, ProductKey: pk, Devices: 40, Connections: 4,
		WildcardSubscriptions: true, Instant: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Stop()
	if err := fleet.WaitInformed(ctx); err != nil {
		t.Fatal(err)
	}
	dn := fleet.DeviceNames()[13]
	be.push(dn, u)
	be.waitFor("the new version", func(m []protocol.Message) bool { return informedVersion(m, dn, protocol.DefaultModule, "2.0.0") })
	if err := fleet.Wait(ctx, func(s devicesim.Summary) bool { return s.Outcomes[devicesim.OutcomeSucceeded] == 1 }); err != nil {
		t.Fatal(err)
	}
	if s := fleet.Summary(); s.PushesReceived != 1 || s.PushesIgnored != 0 {
		t.Fatalf("a push must be handled once, by its device's connection:\n%s", s)
	}
}
