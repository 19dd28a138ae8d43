package e2e

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/lab"
)

// TestScenarios runs each rollout scenario on real parts: kube-apiserver
// and etcd, the Mochi broker, MinIO and the manager (one lab, started
// once), and a simulated fleet per scenario that downloads its images from
// MinIO through the pre-signed URLs it is pushed. Expected numbers come
// from the simulator's plans, never from constants.
//
// The scenarios run at the same time, each in its own namespace and
// product: the timeout scenario needs over a minute (the API's shortest
// timeout is 1m) and the others fit in that minute. They run on their own
// goroutines rather than with t.Parallel, whose default limit (GOMAXPROCS,
// often 2) would queue the others behind it.
func TestScenarios(t *testing.T) {
	l, err := lab.Start(context.Background(), lab.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	scenarios := []struct {
		name string
		run  func(*testing.T, *lab.Lab)
	}{
		{"FailureCodes", scenarioFailureCodes},
		{"RetryThenSuccess", scenarioRetry},
		{"Timeout", scenarioTimeout},
		{"CancelQueued", scenarioCancel},
		{"PauseResume", scenarioPauseResume},
		{"GrayPercent", scenarioGray},
		{"WavesPauseAndPromote", scenarioWavesPromote},
		{"AbortThreshold", scenarioAbort},
		{"CanceledBetweenWaves", scenarioCanceledWaves},
		{"DynamicLateDevices", scenarioDynamic},
		{"Overwrite", scenarioOverwrite},
		{"SoakAndReverts", scenarioSoak},
		{"AbortOnReverts", scenarioRevertAbort},
		{"MaintenanceWindow", scenarioWindow},
	}
	var wg sync.WaitGroup
	for _, sc := range scenarios {
		wg.Go(func() { t.Run(sc.name, func(t *testing.T) { sc.run(t, l) }) })
	}
	wg.Wait()
}

// Every failure step a device can report (-1 upgrade, -2 download, -3
// verification, -4 flash) is counted under its own reason, as often as the
// simulator failed that way.
func scenarioFailureCodes(t *testing.T, l *lab.Lab) {
	s := newScene(t, l, "codes")
	f := s.startFleet(devicesim.Config{Devices: 40, Seed: 11, Failures: devicesim.Failures{
		UpgradeFail: 0.15, DownloadFail: 0.15, DigestMismatch: 0.15, FlashFail: 0.15}})
	plans := byPlan(f)
	failing := []devicesim.Plan{devicesim.PlanUpgradeFail, devicesim.PlanDownloadFail, devicesim.PlanDigestMismatch, devicesim.PlanFlashFail}
	reasons := map[string]int64{}
	for _, p := range failing {
		if len(plans[p]) == 0 {
			t.Fatalf("seed 11 gives no device the plan %s; pick another seed", p)
		}
		r, _ := reasonOf(p)
		reasons[r] = int64(len(plans[p]))
	}
	ub := s.batch("codes", s.firmware("2.0.0"), nil)
	s.wait(ub, "the batch to complete", waitLong, lab.Finished)

	ok := int64(len(plans[devicesim.PlanSucceed]))
	s.wantCounts(ub, otav1.TaskCounts{Total: 40, Succeeded: ok, Failed: 40 - ok})
	s.wantReasons(ub, reasons)
	for _, r := range ub.Status.FailureReasons {
		if _, desc := reasonOf(planOfReason(r.Reason)); !strings.HasPrefix(r.Example, desc) {
			t.Errorf("reason %s: example %q, want the device's description %q...", r.Reason, r.Example, desc)
		}
	}
	sum := f.Summary()
	wantOutcomes := map[devicesim.Outcome]int{
		devicesim.OutcomeSucceeded:      len(plans[devicesim.PlanSucceed]),
		devicesim.OutcomeUpgradeFailed:  len(plans[devicesim.PlanUpgradeFail]),
		devicesim.OutcomeDownloadFailed: len(plans[devicesim.PlanDownloadFail]),
		devicesim.OutcomeDigestMismatch: len(plans[devicesim.PlanDigestMismatch]),
		devicesim.OutcomeFlashFailed:    len(plans[devicesim.PlanFlashFail]),
	}
	// Every device but the download failures fetched the image from MinIO.
	downloads := int64(40 - len(plans[devicesim.PlanDownloadFail]))
	if ub.Status.Phase != otav1.BatchCompleted || !maps.Equal(sum.Outcomes, wantOutcomes) ||
		sum.Downloads != downloads || sum.Versions["default"]["2.0.0"] != int(ok) || sum.InvalidReceived != 0 {
		t.Fatalf("phase %s; fleet outcomes %v (want %v), %d downloads (want %d), versions %v, %d invalid",
			ub.Status.Phase, sum.Outcomes, wantOutcomes, sum.Downloads, downloads, sum.Versions, sum.InvalidReceived)
	}
}

// Failures drawn anew on every attempt: with two retries, a device
// succeeds on the first attempt its plan succeeds, and fails (with the
// reason of its last attempt) when all three fail.
func scenarioRetry(t *testing.T, l *lab.Lab) {
	const retries = 2
	s := newScene(t, l, "retry")
	f := s.startFleet(devicesim.Config{Devices: 30, Seed: 5, Failures: devicesim.Failures{
		DownloadFail: 0.3, FlashFail: 0.2, Transient: true}})
	attempts, reasons := map[string]int{}, map[string]int64{}
	var succeeded, pushes, onRetry int64
	for _, n := range f.DeviceNames() {
		a := 0
		for a < retries+1 && f.PlanAt(n, a) != devicesim.PlanSucceed {
			a++
		}
		switch {
		case a == 0:
			succeeded++
		case a <= retries:
			succeeded++
			onRetry++
		default:
			r, _ := reasonOf(f.PlanAt(n, retries))
			reasons[r]++
		}
		attempts[n] = min(a+1, retries+1)
		pushes += int64(attempts[n])
	}
	if onRetry == 0 || succeeded == 30 {
		t.Fatalf("seed 5: %d devices succeed on a retry, %d of 30 in all; pick a seed with both kinds", onRetry, succeeded)
	}
	ub := s.batch("retry", s.firmware("2.0.0"), func(sp *otav1.UpgradeBatchSpec) {
		sp.Retry = &otav1.RetryPolicy{Count: retries, Interval: &metav1.Duration{Duration: time.Second}}
	})
	s.wait(ub, "the batch to complete", waitLong, lab.Finished)
	s.wantCounts(ub, otav1.TaskCounts{Total: 30, Succeeded: succeeded, Failed: 30 - succeeded})
	s.wantReasons(ub, reasons)
	for n, want := range attempts {
		if d := s.deviceState(f, n); d.Attempts != want {
			t.Errorf("%s: %d attempts, want %d (plans %s, %s, %s)", n, d.Attempts, want, f.PlanAt(n, 0), f.PlanAt(n, 1), f.PlanAt(n, 2))
		}
	}
	if sum := f.Summary(); sum.PushesReceived != pushes || sum.Versions["default"]["2.0.0"] != int(succeeded) {
		t.Fatalf("fleet received %d pushes (want %d), versions %v", sum.PushesReceived, pushes, sum.Versions)
	}
}

// Devices that fall silent after their first progress report time out
// after spec.timeout (1m, the shortest the API allows). They are not
// retried, though the batch retries failures, unless retry.timedOut says
// so; then they are pushed again (and, still busy, ignore it).
func scenarioTimeout(t *testing.T, l *lab.Lab) {
	type run struct {
		s     *scene
		f     *devicesim.Fleet
		ub    *otav1.UpgradeBatch
		stuck int64
	}
	start := func(name string, timedOut bool) run {
		s := newScene(t, l, name)
		f := s.startFleet(devicesim.Config{Devices: 20, Seed: 2, Failures: devicesim.Failures{NeverFinish: 0.3}})
		stuck := int64(len(byPlan(f)[devicesim.PlanNeverFinish]))
		if stuck == 0 || stuck == 20 {
			t.Fatalf("seed 2 makes %d of 20 devices stuck; pick another", stuck)
		}
		ub := s.batch(name, s.firmware("2.0.0"), func(sp *otav1.UpgradeBatchSpec) {
			sp.Timeout = &metav1.Duration{Duration: time.Minute}
			sp.Retry = &otav1.RetryPolicy{Count: 1, Interval: &metav1.Duration{Duration: time.Second}, TimedOut: timedOut}
		})
		return run{s, f, ub, stuck}
	}
	// Both batches start now and time out together, a minute from now.
	plain, again := start("timeout", false), start("timeoutretry", true)

	plain.s.wait(plain.ub, "the batch to complete", 3*time.Minute, lab.Finished)
	plain.s.wantCounts(plain.ub, otav1.TaskCounts{Total: 20, Succeeded: 20 - plain.stuck, TimedOut: plain.stuck})
	if sum := plain.f.Summary(); sum.PushesReceived != 20 || sum.PushesIgnored != 0 || plain.ub.Status.Phase != otav1.BatchCompleted {
		t.Fatalf("without retry.timedOut: phase %s, fleet %s; want one push each, none ignored",
			plain.ub.Status.Phase, sum.Line())
	}

	again.s.waitFleet(again.f, "the stuck devices pushed again", func(sum devicesim.Summary) bool {
		return sum.PushesIgnored == again.stuck
	})
	again.s.wait(again.ub, "the retried pushes to be recorded", waitLong, func(b *otav1.UpgradeBatch) bool {
		return b.Status.Counts.Notified == again.stuck
	})
	again.s.wantCounts(again.ub, otav1.TaskCounts{Total: 20, Succeeded: 20 - again.stuck, Notified: again.stuck})
	if sum := again.f.Summary(); sum.PushesReceived != 20+again.stuck || again.ub.Status.Phase != otav1.BatchRunning {
		t.Fatalf("with retry.timedOut: phase %s, fleet %s", again.ub.Status.Phase, sum.Line())
	}
}

// spec.cancel with states [QUEUED] cancels what was not pushed; devices
// already upgrading carry on and succeed.
func scenarioCancel(t *testing.T, l *lab.Lab) {
	s := newScene(t, l, "cancel")
	// Flashing takes 5 s, so devices are still upgrading when the cancel
	// lands; 120 pushes a minute leaves most of the fleet queued.
	f := s.startFleet(devicesim.Config{Devices: 30, FlashDuration: 5 * time.Second})
	ub := s.batch("cancel", s.firmware("2.0.0"), func(sp *otav1.UpgradeBatchSpec) { sp.RatePerMinute = 120 })
	s.waitFleet(f, "a device upgrading", func(sum devicesim.Summary) bool {
		return sum.Outcomes[devicesim.OutcomeUpgrading] > 0
	})
	s.update(ub, func(sp *otav1.UpgradeBatchSpec) {
		sp.Cancel = &otav1.CancelPolicy{States: []otav1.TaskState{otav1.TaskQueued}}
	})
	s.wait(ub, "the cancel", waitLong, func(b *otav1.UpgradeBatch) bool { return b.Status.Phase == otav1.BatchCanceled })
	if c := ub.Status.Counts; c.Queued != 0 || c.Canceled == 0 || c.Notified+c.InProgress == 0 {
		t.Fatalf("right after the cancel, want no QUEUED task, some CANCELED and some still upgrading: %+v", c)
	}
	s.wait(ub, "the pushed devices to finish", waitLong, func(b *otav1.UpgradeBatch) bool {
		return activeCount(b.Status.Counts) == 0
	})
	pushed := f.Summary().PushesReceived
	s.wantCounts(ub, otav1.TaskCounts{Total: 30, Succeeded: pushed, Canceled: 30 - pushed})
	if sum := f.Summary(); sum.Versions["default"]["2.0.0"] != int(pushed) || ub.Status.Phase != otav1.BatchCanceled {
		t.Fatalf("phase %s, fleet versions %v after %d pushes", ub.Status.Phase, sum.Versions, pushed)
	}
	if cond := condition(ub, otav1.ConditionReady); cond.Reason != otav1.ReasonCanceled {
		t.Fatalf("Ready condition %+v, want reason %s", cond, otav1.ReasonCanceled)
	}
}

// spec.paused stops new pushes mid-rollout; pushed devices finish; nothing
// more is pushed until the batch is resumed, and then it completes.
func scenarioPauseResume(t *testing.T, l *lab.Lab) {
	s := newScene(t, l, "pause")
	f := s.startFleet(devicesim.Config{Devices: 30})
	ub := s.batch("pause", s.firmware("2.0.0"), func(sp *otav1.UpgradeBatchSpec) { sp.RatePerMinute = 300 })
	s.waitFleet(f, "a few pushes", func(sum devicesim.Summary) bool { return sum.PushesReceived >= 8 })
	s.update(ub, func(sp *otav1.UpgradeBatchSpec) { sp.Paused = true })
	s.wait(ub, "the pause, with the pushed devices done", waitLong, func(b *otav1.UpgradeBatch) bool {
		c := b.Status.Counts
		return b.Status.Phase == otav1.BatchPaused && c.Notified+c.InProgress == 0
	})
	pushed := f.Summary().PushesReceived
	if pushed == 30 {
		t.Fatal("every device was pushed before the pause landed; slow the batch down")
	}
	s.wantCounts(ub, otav1.TaskCounts{Total: 30, Succeeded: pushed, Queued: 30 - pushed})
	// At 300 a minute the batch pushed one device every 200 ms. Two
	// seconds paused is ten pushes that must not come, over forty engine
	// ticks and two task scans.
	s.holds(2*time.Second, "nothing pushed while paused", func() error {
		if sum := f.Summary(); sum.PushesReceived != pushed {
			return fmt.Errorf("%d pushes, %d before the pause", sum.PushesReceived, pushed)
		}
		return nil
	})
	s.update(ub, func(sp *otav1.UpgradeBatchSpec) { sp.Paused = false })
	s.wait(ub, "the resumed batch to complete", waitLong, lab.Finished)
	s.wantCounts(ub, otav1.TaskCounts{Total: 30, Succeeded: 30})
	if sum := f.Summary(); sum.PushesReceived != 30 || sum.Versions["default"]["2.0.0"] != 30 {
		t.Fatalf("fleet after resuming: %s", sum.Line())
	}
}
