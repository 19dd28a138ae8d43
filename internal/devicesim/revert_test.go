package devicesim_test

import (
	"testing"
	"time"

	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/protocol"
)

// A reverting device informs the target, and RevertAfter later its old
// version again, which it then runs; other devices keep the target.
func TestRevertPlan(t *testing.T) {
	b := startBroker(t)
	be := newBackend(t, b.URL)
	ctx := testContext(t)
	u, _ := imageServer(t, 4<<10, protocol.SignMD5)
	cfg := devicesim.Config{
		Broker: b.URL, ProductKey: pk, Devices: 4, Instant: true,
		Failures: devicesim.Failures{RevertAfter: 200 * time.Millisecond},
		Plans:    map[string]devicesim.Plan{"dev-000000": devicesim.PlanRevert, "dev-000001": devicesim.PlanRevert},
	}
	fleet, err := devicesim.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Stop()
	if err := fleet.WaitInformed(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for _, dn := range fleet.DeviceNames() {
		be.push(dn, u)
	}
	if err := fleet.Wait(ctx, func(s devicesim.Summary) bool {
		return s.Outcomes[devicesim.OutcomeReverted] == 2 && s.Outcomes[devicesim.OutcomeSucceeded] == 2
	}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Fatalf("reverted after %s, before RevertAfter", took)
	}
	msgs := be.waitFor("the reverts' informs", func(m []protocol.Message) bool {
		return len(of(m, protocol.KindInform, "dev-000000")) >= 3 && len(of(m, protocol.KindInform, "dev-000001")) >= 3
	})
	for _, dn := range fleet.DeviceNames() {
		st, _ := fleet.Device(dn)
		informs := of(msgs, protocol.KindInform, dn)
		last := informs[len(informs)-1].Version
		reverts := fleet.Plan(dn) == devicesim.PlanRevert
		want := map[bool]string{true: "1.0.0", false: "2.0.0"}[reverts]
		if !informedVersion(msgs, dn, protocol.DefaultModule, "2.0.0") || last != want || st.Versions[protocol.DefaultModule] != want {
			t.Errorf("%s (plan %s): informs %v, runs %s; want the target, then %s", dn, fleet.Plan(dn), informs, st.Versions, want)
		}
	}
}
