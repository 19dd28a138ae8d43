package devicesim_test

import (
	"testing"
	"time"

	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/protocol"
)

func TestAskOnBootWithFirmwareGet(t *testing.T) {
	b := startBroker(t)
	be := newBackend(t, b.URL)
	ctx := testContext(t)
	u, _ := imageServer(t, 2<<10, protocol.SignSHA256)
	u.Module = "mcu"
	fleet, err := devicesim.Start(ctx, devicesim.Config{
		Broker: b.URL, ProductKey: pk, Devices: 3, AskOnBoot: true, ProgressInterval: time.Millisecond,
		Modules: []devicesim.Module{{Name: "wifi", Version: "1.0.0"}, {Name: "mcu", Version: "1.0.0"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Stop()
	msgs := be.waitFor("every firmware/get", func(m []protocol.Message) bool { return len(of(m, protocol.KindFirmwareGet, "")) == 6 })
	target := fleet.DeviceNames()[0]
	for _, req := range of(msgs, protocol.KindFirmwareGet, "") {
		var pending *protocol.Upgrade
		if req.DeviceName == target && req.Module == "mcu" {
			pending = &u
		}
		reply, err := protocol.EncodeGetReply(req.ID, pending)
		if err != nil {
			t.Fatal(err)
		}
		be.publish(protocol.FirmwareGetReplyTopic(pk, req.DeviceName), reply)
	}
	be.waitFor("the new version", func(m []protocol.Message) bool { return informedVersion(m, target, "mcu", "2.0.0") })
	if err := fleet.Wait(ctx, func(s devicesim.Summary) bool {
		return s.RepliesReceived == 6 && s.Outcomes[devicesim.OutcomeSucceeded] == 1 && s.Outcomes[devicesim.OutcomeIdle] == 2
	}); err != nil {
		t.Fatal(err)
	}
}

func TestAskOnBootWithLegacyRequest(t *testing.T) {
	b := startBroker(t)
	be := newBackend(t, b.URL)
	ctx := testContext(t)
	u, _ := imageServer(t, 2<<10, protocol.SignMD5)
	fleet, err := devicesim.Start(ctx, devicesim.Config{
		Broker: b.URL, ProductKey: pk, Devices: 2, AskOnBoot: true, LegacyRequest: true, ProgressInterval: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Stop()
	msgs := be.waitFor("both requests", func(m []protocol.Message) bool { return len(of(m, protocol.KindRequest, "")) == 2 })
	target := fleet.DeviceNames()[1]
	if r := of(msgs, protocol.KindRequest, target)[0]; r.Version != "1.0.0" || r.Module != protocol.DefaultModule {
		t.Fatalf("request %+v: want the current version of the default module", r)
	}
	reply, err := protocol.EncodeRequestReply(99, &u)
	if err != nil {
		t.Fatal(err)
	}
	// The reply goes out on the request topic itself; the backend sees it
	// come back (and refuses it as its own), the device acts on it.
	be.publish(protocol.RequestTopic(pk, target), reply)
	be.waitFor("the new version", func(m []protocol.Message) bool {
		return informedVersion(m, target, protocol.DefaultModule, "2.0.0")
	})
	// The device records success once its inform was acknowledged, which
	// may be after the backend saw it.
	if err := fleet.Wait(ctx, func(s devicesim.Summary) bool { return s.Outcomes[devicesim.OutcomeSucceeded] == 1 }); err != nil {
		t.Fatal(err)
	}
	if s := fleet.Summary(); s.InvalidReceived != 0 || s.RepliesReceived != 1 {
		t.Fatalf("summary:\n%s", s)
	}
}

func TestOfflineDeviceComesBack(t *testing.T) {
	b := startBroker(t)
	be := newBackend(t, b.URL)
	ctx := testContext(t)
	u, _ := imageServer(t, 1<<10, protocol.SignMD5)
	fleet, err := devicesim.Start(ctx, devicesim.Config{
		Broker: b.URL, ProductKey: pk, Devices: 2, Mode: devicesim.PerDevice, Instant: true,
		Failures: devicesim.Failures{GoOffline: 1, OfflineFor: 300 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Stop()
	if err := fleet.WaitInformed(ctx); err != nil {
		t.Fatal(err)
	}
	dn := fleet.DeviceNames()[0]
	be.push(dn, u)
	if err := fleet.Wait(ctx, func(s devicesim.Summary) bool { return s.Outcomes[devicesim.OutcomeOffline] == 1 }); err != nil {
		t.Fatal(err)
	}
	// Back online, it informs its unchanged version again, like after a reboot.
	be.waitFor("the inform after coming back", func(m []protocol.Message) bool {
		return len(of(m, protocol.KindInform, dn)) == 2
	})
	st, _ := fleet.Device(dn)
	if st.Offline || st.Versions[protocol.DefaultModule] != "1.0.0" || st.Outcome != devicesim.OutcomeOffline {
		t.Fatalf("device after coming back: %+v", st)
	}
}

func TestRebootAfterFlashInformsEveryModule(t *testing.T) {
	for _, mode := range []devicesim.ConnMode{devicesim.PerDevice, devicesim.Multiplexed} {
		t.Run(string(mode), func(t *testing.T) {
			b := startBroker(t)
			be := newBackend(t, b.URL)
			ctx := testContext(t)
			u, _ := imageServer(t, 1<<10, protocol.SignMD5)
			u.Module = "mcu"
			fleet, err := devicesim.Start(ctx, devicesim.Config{
				Broker: b.URL, ProductKey: pk, Devices: 2, Mode: mode, Instant: true, RebootAfterFlash: true,
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
			msgs := be.waitFor("informs after the reboot", func(m []protocol.Message) bool {
				return informedVersion(m, dn, "mcu", "2.0.0") && len(of(m, protocol.KindInform, dn)) == 4
			})
			if !informedVersion(msgs, dn, "wifi", "1.0.0") {
				t.Fatal("the untouched module was not informed after the reboot")
			}
			if err := fleet.Wait(ctx, func(s devicesim.Summary) bool {
				return s.ConnectionsUp == s.Connections && s.Outcomes[devicesim.OutcomeSucceeded] == 1
			}); err != nil {
				t.Fatal(err)
			}
		})
	}
}
