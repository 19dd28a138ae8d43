package e2e

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/lab"
)

// What each injected failure makes of a device: the simulator's outcome,
// and the task state and reason the operator must record for it.
var restartExpect = map[devicesim.Plan]struct {
	outcome devicesim.Outcome
	state   otav1.TaskState
	reason  string
}{
	devicesim.PlanSucceed:        {devicesim.OutcomeSucceeded, otav1.TaskSucceeded, ""},
	devicesim.PlanDownloadFail:   {devicesim.OutcomeDownloadFailed, otav1.TaskFailed, otav1.FailureDownload},
	devicesim.PlanDigestMismatch: {devicesim.OutcomeDigestMismatch, otav1.TaskFailed, otav1.FailureVerification},
	devicesim.PlanFlashFail:      {devicesim.OutcomeFlashFailed, otav1.TaskFailed, otav1.FailureFlash},
}

// TestRestartMidRollout is issue #5's acceptance test on real parts: the
// manager is restarted in the middle of a 2,000-device rollout (real
// kube-apiserver and etcd, the MQTT broker, MinIO, simulated devices that
// download the image through pre-signed URLs), and afterwards every device
// ends in the right state, every counter of the batch is exact, and the
// records in the API server (UpgradeSlices, DeviceSlices, the Product's
// inventory) agree with the devices.
func TestRestartMidRollout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	began := time.Now()
	// Mosquitto: the embedded Mochi loses QoS 1 messages published while the
	// restarted gateway resumes its session (docs/brokers.md), and this
	// test counts every device exactly.
	l, err := lab.Start(ctx, lab.Options{Log: managerLog(t), Mosquitto: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	c := l.Client()
	const ns, pk, n = "restart", "restartplug", 2000
	prod := &otav1.Product{ObjectMeta: lab.ObjectMeta(ns, "plug"), Spec: otav1.ProductSpec{ProductKey: pk}}
	if err := l.CreateProduct(ctx, prod); err != nil {
		t.Fatal(err)
	}

	fleet, err := devicesim.Start(ctx, l.FleetConfig(devicesim.Config{
		ProductKey: pk, Devices: n, Mode: devicesim.Multiplexed, Connections: 4,
		Failures: devicesim.Failures{DownloadFail: 0.04, DigestMismatch: 0.03, FlashFail: 0.05}, Seed: 5,
		ProgressInterval: 200 * time.Millisecond,
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Stop()
	if err := fleet.WaitInformed(ctx); err != nil {
		t.Fatal(err)
	}
	plans := map[string]devicesim.Plan{}
	for _, d := range fleet.DeviceNames() {
		plans[d] = fleet.Plan(d)
		if _, ok := restartExpect[plans[d]]; !ok {
			t.Fatalf("device %s plans %q, which this test does not inject", d, plans[d])
		}
	}
	// A static batch selects what the inventory holds when it starts.
	if err := lab.Poll(ctx, 30*time.Second, func() (bool, error) {
		inv, err := inventoryVersions(ctx, c, ns, pk)
		return len(inv) == n, err
	}); err != nil {
		t.Fatalf("the inventory never held the %d devices: %v", n, err)
	}

	image := make([]byte, 16<<10)
	_, _ = rand.Read(image)
	fw := &otav1.Firmware{ObjectMeta: lab.ObjectMeta(ns, "plug-2.0.0"), Spec: otav1.FirmwareSpec{
		Product: "plug", Version: "2.0.0", SignMethod: otav1.SignMethodSHA256, VerificationRequired: ptr.To(false)}}
	if err := l.PushFirmware(ctx, fw, image); err != nil {
		t.Fatalf("pushing firmware: %v", err)
	}
	// 5,000 pushes a minute: 24 s for the fleet, long enough to restart
	// in the middle.
	ub := &otav1.UpgradeBatch{ObjectMeta: lab.ObjectMeta(ns, "rollout"), Spec: otav1.UpgradeBatchSpec{
		Firmware: fw.Name, RatePerMinute: 5000}}
	if err := c.Create(ctx, ub); err != nil {
		t.Fatal(err)
	}
	rolloutStart := time.Now()

	// Restart once a quarter of the fleet succeeded while other devices
	// are downloading, so that the new manager inherits every kind of task:
	// finished, in flight, and not pushed yet.
	midway, cancelMidway := context.WithTimeout(ctx, time.Minute)
	err = fleet.Wait(midway, func(s devicesim.Summary) bool {
		return s.Outcomes[devicesim.OutcomeSucceeded] >= n/4 && s.Outcomes[devicesim.OutcomeUpgrading] > 0
	})
	cancelMidway()
	if err != nil {
		t.Fatalf("the rollout never got a quarter done: %v", err)
	}
	before := fleet.Summary()
	oldParts := l.Parts
	restartAt := time.Now()
	if err := l.RestartManager(ctx); err != nil {
		t.Fatalf("restarting the manager: %v", err)
	}
	restartTook := time.Since(restartAt)
	t.Logf("restarted after %s of rollout, in %s; fleet then: %s", restartAt.Sub(rolloutStart).Round(time.Millisecond),
		restartTook.Round(time.Millisecond), before.Line())
	if l.Parts == oldParts || l.Parts.Engine == oldParts.Engine || l.Parts.Gateway == oldParts.Gateway {
		t.Fatal("RestartManager left the old components in Parts")
	}
	if before.PushesReceived >= n {
		t.Fatalf("every device was pushed before the restart (%s): not a restart mid-rollout", before.Line())
	}

	if err := l.WaitBatch(ctx, ub, 90*time.Second, lab.Finished, nil); err != nil {
		t.Logf("engine before the restart %+v; after %+v", oldParts.Engine.Stats(), l.Parts.Engine.Stats())
		describeActive(ctx, t, c, ub, fleet)
		t.Fatalf("the rollout did not finish after the restart: %v (status %+v; fleet %s)", err, ub.Status, fleet.Summary().Line())
	}
	t.Logf("rollout finished %s after it started", time.Since(rolloutStart).Round(time.Millisecond))
	// A device records its outcome once its last report is acknowledged,
	// which may be after the operator took the report.
	settled, cancelSettled := context.WithTimeout(ctx, 10*time.Second)
	_ = fleet.Wait(settled, func(s devicesim.Summary) bool {
		return s.Outcomes[devicesim.OutcomeUpgrading] == 0 && s.Outcomes[devicesim.OutcomeIdle] == 0
	}) // checkDevices tells which devices did not settle
	cancelSettled()
	after := fleet.Summary()
	oldStats, newStats := oldParts.Engine.Stats(), l.Parts.Engine.Stats()
	t.Logf("fleet: %s ignored=%d invalid=%d downloads=%d; engine before the restart %+v; after %+v",
		after.Line(), after.PushesIgnored, after.InvalidReceived, after.Downloads, oldStats, newStats)
	if newStats.Pushed == 0 {
		t.Fatalf("the new manager pushed nothing: %+v", newStats)
	}

	checkDevices(t, fleet, plans, after)
	want := restartWant(plans)
	checkBatch(t, ub, want)
	checkUpgradeSlices(ctx, t, c, ub, fleet, plans)
	checkInventory(ctx, t, c, prod, fleet, want)
	t.Logf("the whole test took %s", time.Since(began).Round(time.Millisecond))
}

// restartCounts is what the batch must end with, derived from the devices'
// plans.
type restartCounts struct {
	counts  otav1.TaskCounts
	reasons map[string]int64
	// versions counts the devices by the default module's final version.
	versions map[string]int64
}
