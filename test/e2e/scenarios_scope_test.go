package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/lab"
)

// A gray release takes the devices whose stable hash falls under the
// percentage, and only those.
func scenarioGray(t *testing.T, l *lab.Lab) {
	const n, percent = 50, 30
	s := newScene(t, l, "gray")
	f := s.startFleet(devicesim.Config{Devices: n})
	var picked []string
	for _, name := range f.DeviceNames() {
		if grayBucket(s.pk, name) < percent {
			picked = append(picked, name)
		}
	}
	if len(picked) < n*percent/200 || len(picked) > n*percent*2/100 {
		t.Fatalf("the hash picks %d of %d devices for %d%%: not a gray release", len(picked), n, percent)
	}
	ub := s.batch("gray", s.firmware("2.0.0"), func(sp *otav1.UpgradeBatchSpec) {
		sp.Scope = otav1.Scope{Type: otav1.ScopeGray, GrayPercent: percent}
	})
	s.wait(ub, "the batch to complete", waitLong, lab.Finished)
	s.wantCounts(ub, otav1.TaskCounts{Total: int64(len(picked)), Succeeded: int64(len(picked))})
	for _, name := range f.DeviceNames() {
		d, want := s.deviceState(f, name), "1.0.0"
		if slices.Contains(picked, name) {
			want = "2.0.0"
		}
		if d.Versions["default"] != want {
			t.Errorf("%s (bucket %d): version %s, want %s", name, grayBucket(s.pk, name), d.Versions["default"], want)
		}
	}
	if sum := f.Summary(); sum.PushesReceived != int64(len(picked)) {
		t.Fatalf("%d pushes for %d picked devices", sum.PushesReceived, len(picked))
	}
}

// A wave with a pause and no duration holds the rollout until promoted;
// promotedWaves lets it go on. Which devices make the first wave is the
// engine's choice (its inventory order); how many, and that only they are
// pushed, is checked.
func scenarioWavesPromote(t *testing.T, l *lab.Lab) {
	const n, first = 20, 20 // the first wave is 20% of the devices
	s := newScene(t, l, "waves")
	f := s.startFleet(devicesim.Config{Devices: n})
	ub := s.batch("waves", s.firmware("2.0.0"), func(sp *otav1.UpgradeBatchSpec) {
		sp.Waves = []otav1.Wave{{Percent: first, Pause: &otav1.WavePause{}}, {Percent: 100}}
	})
	s.wait(ub, "the pause after wave 1", waitLong, func(b *otav1.UpgradeBatch) bool {
		return condition(b, otav1.ConditionReconciling).Reason == otav1.ReasonWavePaused
	})
	w := int64((n*first + 99) / 100)
	s.wantCounts(ub, otav1.TaskCounts{Total: n, Succeeded: w, Queued: n - w})
	if ub.Status.Phase != otav1.BatchPaused || ub.Status.CurrentWave != 1 {
		t.Fatalf("held after wave 1: %s", s.describe(ub))
	}
	if sum := f.Summary(); sum.PushesReceived != w || sum.Versions["default"]["2.0.0"] != int(w) {
		t.Fatalf("wave 1 is %d devices, but the fleet has %s\n%s", w, sum.Line(), s.devices(f))
	}
	s.update(ub, func(sp *otav1.UpgradeBatchSpec) { sp.PromotedWaves = 1 })
	s.wait(ub, "the promoted batch to complete", waitLong, lab.Finished)
	s.wantCounts(ub, otav1.TaskCounts{Total: n, Succeeded: n})
	if sum := f.Summary(); ub.Status.CurrentWave != 2 || sum.PushesReceived != n || sum.Versions["default"]["2.0.0"] != n {
		t.Fatalf("after promotion: wave %d, fleet %s", ub.Status.CurrentWave, sum.Line())
	}
}

// The abort policy stops a batch once too many devices failed: it is
// Aborted with a condition saying why, and its tasks not pushed yet are
// canceled. At 2 pushes a second the abort lands mid-rollout: the plans
// guarantee it comes before the last few devices whatever order the engine
// pushes in, and the counts are checked against where it actually stopped.
func scenarioAbort(t *testing.T, l *lab.Lab) {
	const n, maxFailed, minFinished = 30, 1, 5
	s := newScene(t, l, "abort")
	f := s.startFleet(devicesim.Config{Devices: n, Seed: 4, Failures: devicesim.Failures{DownloadFail: 0.3}})
	failing := len(byPlan(f)[devicesim.PlanDownloadFail])
	// In the worst order every success comes first: the abort then needs
	// n-failing successes and maxFailed+1 failures to finish.
	if latest := n - failing + maxFailed + 1; latest > n-5 {
		t.Fatalf("seed 4 fails %d of %d devices: the abort could come as late as device %d; pick another seed", failing, n, latest)
	}
	ub := s.batch("abort", s.firmware("2.0.0"), func(sp *otav1.UpgradeBatchSpec) {
		sp.RatePerMinute = 120
		sp.Abort = &otav1.AbortPolicy{MaxFailed: maxFailed, MinFinished: minFinished}
	})
	s.wait(ub, "the abort, with the pushed devices done", waitLong, func(b *otav1.UpgradeBatch) bool {
		return b.Status.Phase == otav1.BatchAborted && activeCount(b.Status.Counts) == 0
	})
	sum := f.Summary()
	pushed := sum.PushesReceived
	if pushed < minFinished || pushed == n {
		t.Fatalf("%d of %d devices pushed; the abort must come after %d and before the last\n%s", pushed, n, minFinished, s.devices(f))
	}
	var failed, attempted int64
	for _, name := range f.DeviceNames() {
		switch d := s.deviceState(f, name); {
		case d.Attempts > 1:
			t.Fatalf("%s pushed %d times; the batch has no retries", name, d.Attempts)
		case d.Attempts == 1 && f.Plan(name) == devicesim.PlanDownloadFail:
			failed++
			attempted++
		case d.Attempts == 1:
			attempted++
		}
	}
	if attempted != pushed || int64(sum.Outcomes[devicesim.OutcomeDownloadFailed]) != failed {
		t.Fatalf("%d devices attempted an upgrade after %d pushes; fleet %s", attempted, pushed, sum.Line())
	}
	s.wantCounts(ub, otav1.TaskCounts{Total: n, Succeeded: pushed - failed, Failed: failed, Canceled: n - pushed})
	s.wantReasons(ub, map[string]int64{otav1.FailureDownload: failed})
	stalled := condition(ub, otav1.ConditionStalled)
	if stalled.Status != metav1.ConditionTrue || stalled.Reason != otav1.ReasonAborted ||
		!strings.Contains(stalled.Message, fmt.Sprintf("more than the %d allowed", maxFailed)) {
		t.Fatalf("Stalled condition %+v, want True, %s, with the threshold", stalled, otav1.ReasonAborted)
	}
}

// A dynamic batch takes devices that appear after it started, on a source
// version, and leaves those on another version alone.
func scenarioDynamic(t *testing.T, l *lab.Lab) {
	s := newScene(t, l, "dynamic")
	early := s.startFleet(devicesim.Config{Devices: 10, NamePrefix: "early-"})
	ub := s.batch("dynamic", s.firmware("2.0.0"), func(sp *otav1.UpgradeBatchSpec) {
		sp.Type, sp.SourceVersions = otav1.BatchDynamic, []string{"1.0.0"}
	})
	s.wait(ub, "the early devices", waitLong, func(b *otav1.UpgradeBatch) bool { return b.Status.Counts.Succeeded == 10 })

	old := s.startFleet(devicesim.Config{Devices: 5, NamePrefix: "old-", Modules: []devicesim.Module{{Name: "default", Version: "0.9.0"}}})
	late := s.startFleet(devicesim.Config{Devices: 10, NamePrefix: "late-"})
	s.wait(ub, "the late devices", waitLong, func(b *otav1.UpgradeBatch) bool { return b.Status.Counts.Succeeded == 20 })
	// The engine takes a device when it handles its inform; once it knows
	// every old device, none of them will be taken.
	for _, name := range old.DeviceNames() {
		var tasks int
		if err := lab.Poll(s.ctx, waitLong, func() (bool, error) {
			ts, known := l.Parts.Engine.DeviceTasks(s.pk, name)
			tasks = len(ts)
			return known, nil
		}); err != nil || tasks != 0 {
			t.Fatalf("device %s on another source version: known to the engine %v, %d tasks", name, err == nil, tasks)
		}
	}
	s.refresh(ub)
	s.wantCounts(ub, otav1.TaskCounts{Total: 20, Succeeded: 20})
	if ub.Status.Phase != otav1.BatchRunning {
		t.Fatalf("a dynamic batch keeps running: %s", s.describe(ub))
	}
	for _, fl := range []*devicesim.Fleet{early, late} {
		if sum := fl.Summary(); sum.Versions["default"]["2.0.0"] != 10 {
			t.Fatalf("fleet %v: %s", fl.DeviceNames()[0], sum.Line())
		}
	}
	if sum := old.Summary(); sum.PushesReceived != 0 {
		t.Fatalf("devices on 0.9.0 were pushed: %s", sum.Line())
	}
}

// overwrite takes devices held by another batch's tasks that have not
// started (CONFIRM), but not one whose task started: that device fails as
// Busy, naming the batch that holds it.
func scenarioOverwrite(t *testing.T, l *lab.Lab) {
	const n = 12
	s := newScene(t, l, "overwrite")
	// dev-000000 hangs once pushed, so its task in the first batch stays
	// IN_PROGRESS.
	started := "dev-000000"
	f := s.startFleet(devicesim.Config{Devices: n, Plans: map[string]devicesim.Plan{started: devicesim.PlanNeverFinish}})
	hold := s.batch("hold", s.firmware("2.0.0"), func(sp *otav1.UpgradeBatchSpec) { sp.ConfirmationRequired = true })
	s.wait(hold, "every device waiting for confirmation", waitLong, func(b *otav1.UpgradeBatch) bool {
		return b.Status.Counts.Confirm == n
	})
	if err := l.Parts.Engine.Confirm(s.pk, started); err != nil { // what the app API's confirm does
		t.Fatal(err)
	}
	s.wait(hold, "the confirmed device to start", waitLong, func(b *otav1.UpgradeBatch) bool {
		return b.Status.Counts.InProgress == 1
	})

	take := s.batch("take", s.firmware("3.0.0"), func(sp *otav1.UpgradeBatchSpec) { sp.Overwrite = true })
	s.wait(take, "the overwriting batch to complete", waitLong, lab.Finished)
	s.wantCounts(take, otav1.TaskCounts{Total: n, Succeeded: n - 1, Failed: 1})
	s.wantReasons(take, map[string]int64{otav1.FailureBusy: 1})
	if ex := take.Status.FailureReasons[0].Example; !strings.Contains(ex, "UpgradeBatch/hold") {
		t.Fatalf("busy example %q does not name the holding batch", ex)
	}
	s.wait(hold, "the overwritten tasks canceled", waitLong, func(b *otav1.UpgradeBatch) bool {
		return b.Status.Counts.Canceled == n-1
	})
	s.wantCounts(hold, otav1.TaskCounts{Total: n, InProgress: 1, Canceled: n - 1})
	for _, name := range f.DeviceNames() {
		d, want := s.deviceState(f, name), "3.0.0"
		if name == started {
			want = "1.0.0"
		}
		if d.Versions["default"] != want || d.Attempts != 1 {
			t.Errorf("%s: version %s after %d attempts, want %s after 1", name, d.Versions["default"], d.Attempts, want)
		}
	}
}

// A batch canceled before its last wave, once the engine released its
// tasks, must not stop the engine: a later batch completes.
func scenarioCanceledWaves(t *testing.T, l *lab.Lab) {
	s := newScene(t, l, "cancelwaves")
	f := s.startFleet(devicesim.Config{Devices: 10})
	fw := s.firmware("2.0.0")
	ub := s.batch("waves", fw, func(sp *otav1.UpgradeBatchSpec) {
		sp.Waves = []otav1.Wave{{Percent: 50, Pause: &otav1.WavePause{}}, {Percent: 100}}
	})
	s.wait(ub, "the pause after wave 1", waitLong, func(b *otav1.UpgradeBatch) bool { return b.Status.Phase == otav1.BatchPaused })
	s.update(ub, func(sp *otav1.UpgradeBatchSpec) { sp.Cancel = &otav1.CancelPolicy{} })
	s.wait(ub, "the cancel", waitLong, func(b *otav1.UpgradeBatch) bool { return b.Status.Phase == otav1.BatchCanceled })
	var canceled string // a device of wave 2, never pushed
	for _, name := range f.DeviceNames() {
		if s.deviceState(f, name).Attempts == 0 {
			canceled = name
		}
	}
	// A finished static batch's tasks leave the engine's memory once they
	// are written: the canceled device then has no task to show.
	if err := lab.Poll(s.ctx, waitLong, func() (bool, error) {
		tasks, _ := l.Parts.Engine.DeviceTasks(s.pk, canceled)
		return len(tasks) == 0, nil
	}); err != nil {
		t.Fatalf("the canceled batch's tasks were never released: %v", err)
	}
	next := s.batch("next", fw, nil)
	s.wait(next, "a later batch to complete", waitLong, lab.Finished)
	s.wantCounts(next, otav1.TaskCounts{Total: 5, Succeeded: 5})
}
