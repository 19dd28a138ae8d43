package devicesim_test

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/protocol"
)

// TestFailureInjection pushes to every device and checks that each ends as
// its plan said, with the matching progress step, and that plans depend only
// on the seed.
func TestFailureInjection(t *testing.T) {
	b := startBroker(t)
	be := newBackend(t, b.URL)
	ctx := testContext(t)
	u, _ := imageServer(t, 4<<10, protocol.SignMD5)
	cfg := devicesim.Config{
		Broker: b.URL, ProductKey: pk, Devices: 120, Instant: true, Seed: 7,
		Failures: devicesim.Failures{DownloadFail: 0.1, DigestMismatch: 0.1, FlashFail: 0.1, NeverFinish: 0.1,
			GoOffline: 0.1, SlowDownload: 0.1, SlowDownloadDelay: 50 * time.Millisecond},
	}
	fleet, err := devicesim.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Stop()
	if err := fleet.WaitInformed(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[devicesim.Plan]struct {
		outcome devicesim.Outcome
		last    protocol.Step
	}{
		devicesim.PlanSucceed:        {devicesim.OutcomeSucceeded, protocol.StepDone},
		devicesim.PlanSlowDownload:   {devicesim.OutcomeSucceeded, protocol.StepDone},
		devicesim.PlanDownloadFail:   {devicesim.OutcomeDownloadFailed, protocol.StepDownloadFailed},
		devicesim.PlanDigestMismatch: {devicesim.OutcomeDigestMismatch, protocol.StepVerifyFailed},
		devicesim.PlanFlashFail:      {devicesim.OutcomeFlashFailed, protocol.StepFlashFailed},
		devicesim.PlanNeverFinish:    {devicesim.OutcomeStuck, protocol.StepDownloadStarted},
		devicesim.PlanGoOffline:      {devicesim.OutcomeOffline, protocol.StepDownloadStarted},
	}
	plans := map[devicesim.Plan]int{}
	for _, dn := range fleet.DeviceNames() {
		plans[fleet.Plan(dn)]++
		be.push(dn, u)
	}
	if len(plans) != len(want) {
		t.Fatalf("120 devices at 10%% each should exercise every plan, got %v", plans)
	}
	if err := fleet.Wait(ctx, func(s devicesim.Summary) bool {
		return s.Outcomes[devicesim.OutcomeUpgrading] == 0 && s.Outcomes[devicesim.OutcomeIdle] == 0
	}); err != nil {
		t.Fatal(err)
	}
	msgs := be.waitFor("all reports", func(m []protocol.Message) bool {
		return len(of(m, protocol.KindInform, "")) >= 120+plans[devicesim.PlanSucceed]+plans[devicesim.PlanSlowDownload]
	})
	for _, dn := range fleet.DeviceNames() {
		w := want[fleet.Plan(dn)]
		st, _ := fleet.Device(dn)
		p := of(msgs, protocol.KindProgress, dn)
		if st.Outcome != w.outcome || len(p) == 0 || p[0].Step != 0 || p[len(p)-1].Step != w.last {
			t.Errorf("%s (plan %s): outcome %s, steps %s; want %s ending with %d", dn, fleet.Plan(dn), st.Outcome, steps(p), w.outcome, w.last)
		}
		if succeeded := informedVersion(msgs, dn, protocol.DefaultModule, "2.0.0"); succeeded != (w.outcome == devicesim.OutcomeSucceeded) {
			t.Errorf("%s (plan %s): informed new version = %v", dn, fleet.Plan(dn), succeeded)
		}
	}

	// A second push: stuck devices are still busy, offline ones unreachable.
	stuck := ""
	for _, dn := range fleet.DeviceNames() {
		if fleet.Plan(dn) == devicesim.PlanNeverFinish {
			stuck = dn
			break
		}
	}
	be.push(stuck, u)
	if err := fleet.Wait(ctx, func(s devicesim.Summary) bool { return s.PushesIgnored == 1 }); err != nil {
		t.Fatal(err)
	}

	// Same seed, same plans; another seed, other plans.
	other := cfg
	other.Seed = 8
	same, differ := 0, 0
	for i := range 120 {
		dn := fmt.Sprintf("dev-%06d", i)
		if devicesim.PlanFor(cfg, dn, 0) == fleet.Plan(dn) {
			same++
		}
		if devicesim.PlanFor(other, dn, 0) != fleet.Plan(dn) {
			differ++
		}
	}
	if same != 120 || differ == 0 {
		t.Fatalf("plans are not a function of the seed: same %d, differ %d", same, differ)
	}
}

func TestTransientFailuresDrawPerAttempt(t *testing.T) {
	cfg := devicesim.Config{Failures: devicesim.Failures{DownloadFail: 0.5, Transient: true}}
	changed := 0
	for i := range 200 {
		dn := fmt.Sprintf("dev-%06d", i)
		if devicesim.PlanFor(cfg, dn, 0) != devicesim.PlanFor(cfg, dn, 1) {
			changed++
		}
	}
	if changed < 60 || changed > 140 {
		t.Fatalf("with transient failures about half the devices should change plan between attempts, got %d/200", changed)
	}
	cfg.Failures.Transient = false
	for i := range 200 {
		dn := fmt.Sprintf("dev-%06d", i)
		if devicesim.PlanFor(cfg, dn, 0) != devicesim.PlanFor(cfg, dn, 5) {
			t.Fatal("persistent failures must not depend on the attempt")
		}
	}
}

func TestPlanRates(t *testing.T) {
	cfg := devicesim.Config{Failures: devicesim.Failures{DownloadFail: 0.05, FlashFail: 0.2, GoOffline: 0.01}}
	counts := map[devicesim.Plan]int{}
	const n = 20000
	for i := range n {
		counts[devicesim.PlanFor(cfg, fmt.Sprintf("dev-%06d", i), 0)]++
	}
	for plan, rate := range map[devicesim.Plan]float64{
		devicesim.PlanDownloadFail: 0.05, devicesim.PlanFlashFail: 0.2, devicesim.PlanGoOffline: 0.01, devicesim.PlanSucceed: 0.74,
	} {
		got := float64(counts[plan]) / n
		if got < rate*0.85-0.002 || got > rate*1.15+0.002 {
			t.Errorf("plan %s: rate %.4f, want about %.2f", plan, got, rate)
		}
	}
}

func TestConfigRefused(t *testing.T) {
	ctx := testContext(t)
	for name, cfg := range map[string]devicesim.Config{
		"no broker":        {ProductKey: pk, Devices: 1},
		"wildcard product": {Broker: "tcp://127.0.0.1:1", ProductKey: "a+", Devices: 1},
		"no devices":       {Broker: "tcp://127.0.0.1:1", ProductKey: pk},
		"bad version":      {Broker: "tcp://127.0.0.1:1", ProductKey: pk, Devices: 1, Modules: []devicesim.Module{{Name: "m", Version: "1 0"}}},
		"rates over 1":     {Broker: "tcp://127.0.0.1:1", ProductKey: pk, Devices: 1, Failures: devicesim.Failures{FlashFail: 0.6, DownloadFail: 0.6}},
		"bad mode":         {Broker: "tcp://127.0.0.1:1", ProductKey: pk, Devices: 1, Mode: "mesh"},
		"unknown profile":  {Broker: "tcp://127.0.0.1:1", ProductKey: pk, Devices: 1, Profile: "sdk5"},
		"sdk4 multiplexed": {Broker: "tcp://127.0.0.1:1", ProductKey: pk, Devices: 1, Profile: devicesim.ProfileSDK4, Mode: devicesim.Multiplexed},
		"sdk4 username":    {Broker: "tcp://127.0.0.1:1", ProductKey: pk, Devices: 1, Profile: devicesim.ProfileSDK4, Username: "u"},
		"sdk4 legacy":      {Broker: "tcp://127.0.0.1:1", ProductKey: pk, Devices: 1, Profile: devicesim.ProfileSDK4, LegacyRequest: true},
		"host with a port": {Broker: "tcp://127.0.0.1:1", ProductKey: pk, Devices: 1, Hosts: map[string]string{"dl:80": "127.0.0.1:80"}},
	} {
		if f, err := devicesim.Start(ctx, cfg); err == nil {
			f.Stop()
			t.Errorf("%s: Start accepted the config", name)
		}
	}
}

// TestUpgradeFailAndFixedPlans: an upgrade-fail device downloads, then
// reports step -1; Config.Plans overrides the draw for the named devices on
// every attempt.
func TestUpgradeFailAndFixedPlans(t *testing.T) {
	b := startBroker(t)
	be := newBackend(t, b.URL)
	ctx := testContext(t)
	u, _ := imageServer(t, 8<<10, protocol.SignSHA256)
	cfg := devicesim.Config{
		Broker: b.URL, ProductKey: pk, Devices: 20, Seed: 3, ProgressInterval: time.Millisecond,
		Failures: devicesim.Failures{UpgradeFail: 0.5, Transient: true},
		Plans:    map[string]devicesim.Plan{"dev-000000": devicesim.PlanFlashFail, "dev-000001": devicesim.PlanSucceed},
	}
	fleet, err := devicesim.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Stop()
	if err := fleet.WaitInformed(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[devicesim.Outcome]int{}
	for _, dn := range fleet.DeviceNames() {
		switch fleet.Plan(dn) {
		case devicesim.PlanUpgradeFail:
			want[devicesim.OutcomeUpgradeFailed]++
		case devicesim.PlanFlashFail:
			want[devicesim.OutcomeFlashFailed]++
		case devicesim.PlanSucceed:
			want[devicesim.OutcomeSucceeded]++
		default:
			t.Fatalf("%s: plan %s, want only upgrade_fail, flash_fail (fixed) or succeed", dn, fleet.Plan(dn))
		}
		be.push(dn, u)
	}
	if want[devicesim.OutcomeUpgradeFailed] == 0 || want[devicesim.OutcomeFlashFailed] != 1 {
		t.Fatalf("plans %v: the seed should give some upgrade failures and the fixed flash failure", want)
	}
	for i := range 4 {
		if fleet.PlanAt("dev-000000", i) != devicesim.PlanFlashFail || fleet.PlanAt("dev-000001", i) != devicesim.PlanSucceed {
			t.Fatalf("attempt %d: a fixed plan changed", i)
		}
	}
	if err := fleet.Wait(ctx, func(s devicesim.Summary) bool {
		return s.Outcomes[devicesim.OutcomeUpgrading] == 0 && s.Outcomes[devicesim.OutcomeIdle] == 0
	}); err != nil {
		t.Fatal(err)
	}
	if s := fleet.Summary(); !maps.Equal(s.Outcomes, want) || s.Downloads != 20 {
		t.Fatalf("outcomes %v, want %v; every device downloads first:\n%s", s.Outcomes, want, s)
	}
	msgs := be.waitFor("every failure report", func(m []protocol.Message) bool {
		n := 0
		for _, p := range of(m, protocol.KindProgress, "") {
			if p.Step < 0 {
				n++
			}
		}
		return n == 20-want[devicesim.OutcomeSucceeded]
	})
	for _, dn := range fleet.DeviceNames() {
		if fleet.Plan(dn) != devicesim.PlanUpgradeFail {
			continue
		}
		p := of(msgs, protocol.KindProgress, dn)
		if last := p[len(p)-1]; last.Step != protocol.StepFailed || !strings.HasPrefix(last.Desc, "upgrade failed") {
			t.Errorf("%s: last report %+v, want step -1 upgrade failed", dn, last)
		}
	}
}

func TestFixedPlansRefused(t *testing.T) {
	ctx := testContext(t)
	for name, plans := range map[string]map[string]devicesim.Plan{
		"unknown device":    {"dev-000020": devicesim.PlanSucceed},
		"other prefix":      {"cam-000001": devicesim.PlanSucceed},
		"unpadded name":     {"dev-1": devicesim.PlanSucceed},
		"unknown plan name": {"dev-000001": "explode"},
	} {
		cfg := devicesim.Config{Broker: "tcp://127.0.0.1:1", ProductKey: pk, Devices: 20, Plans: plans}
		// The broker is unreachable: only validation can name the plan.
		f, err := devicesim.Start(ctx, cfg)
		if err == nil {
			f.Stop()
		}
		if err == nil || !strings.Contains(err.Error(), "plan") {
			t.Errorf("%s: Start(plans %v) = %v, want the plan refused", name, plans, err)
		}
	}
}
