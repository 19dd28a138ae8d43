package fleet

import (
	"context"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/rollout"
)

var v1 = map[string]string{"default": "1.0.0"}

func TestHappyPathWritesSlicesAndFinishes(t *testing.T) {
	v := newEnv(t)
	devs := names("d", 250)
	v.devices(upgrades, v1, devs...)
	v.devices(upgrades, map[string]string{"default": "2.0.0"}, "already-there")
	st := v.upsert(v.spec("b", "default", "2.0.0"))
	if st.Counts.Total != 250 {
		t.Fatalf("selected %d devices, want 250 (the one on the target is skipped)", st.Counts.Total)
	}
	st = v.waitFor("b", "completion", completed)
	if st.Counts.Succeeded != 250 || st.Counts.Failed != 0 {
		t.Fatalf("counts %+v", st.Counts)
	}
	v.e.Flush(context.Background())

	var us otav1.UpgradeSliceList
	if err := cp.Client.List(context.Background(), &us, client.InNamespace(v.ns)); err != nil {
		t.Fatal(err)
	}
	if len(us.Items) != 3 {
		t.Fatalf("%d UpgradeSlices, want 3 for 250 devices", len(us.Items))
	}
	succeeded := 0
	for _, s := range us.Items {
		for _, task := range s.Tasks {
			if task.State == otav1.TaskSucceeded && task.Attempt == 1 {
				succeeded++
			}
		}
	}
	if succeeded != 250 {
		t.Fatalf("%d SUCCEEDED tasks in slices, want 250", succeeded)
	}
	var ds otav1.DeviceSliceList
	if err := cp.Client.List(context.Background(), &ds, client.InNamespace(v.ns)); err != nil {
		t.Fatal(err)
	}
	onTarget := 0
	for _, s := range ds.Items {
		for _, d := range s.Devices {
			if len(d.Modules) == 1 && d.Modules[0].Version == "2.0.0" && d.Lock == nil {
				onTarget++
			}
		}
	}
	if onTarget != 251 {
		t.Fatalf("%d devices on 2.0.0 without a lock in DeviceSlices, want 251", onTarget)
	}
	// Once written, the finished batch's tasks leave memory; its status stays.
	v.e.mu.Lock()
	c := v.e.campaigns[keyOf(v.ns, otav1.CampaignReference{Kind: otav1.KindUpgradeBatch, Name: "b"})]
	held := len(c.tasks)
	v.e.mu.Unlock()
	after, _ := v.e.Status(v.ns, otav1.CampaignReference{Kind: otav1.KindUpgradeBatch, Name: "b"})
	if held != 0 || after.Counts.Succeeded != 250 || after.Slices != 3 || after.Phase != otav1.BatchCompleted {
		t.Errorf("after release: %d tasks held, status %+v", held, after)
	}
	// Coalescing: far fewer writes than device messages.
	if w := v.e.Stats().Writes; w > 60 {
		t.Errorf("%d API writes for 251 devices; coalescing is not working", w)
	}
}

func TestFailureCodesAreCounted(t *testing.T) {
	v := newEnv(t)
	v.devices(failsDownload, v1, names("bad", 3)...)
	v.devices(upgrades, v1, names("good", 2)...)
	v.upsert(v.spec("b", "default", "2.0.0"))
	st := v.waitFor("b", "completion", completed)
	if st.Counts.Failed != 3 || st.Counts.Succeeded != 2 {
		t.Fatalf("counts %+v", st.Counts)
	}
	if len(st.Reasons) != 1 || st.Reasons[0].Reason != otav1.FailureDownload || st.Reasons[0].Count != 3 ||
		st.Reasons[0].Example != "download failed: 404" {
		t.Fatalf("reasons %+v", st.Reasons)
	}
}

func TestRetryThenSuccess(t *testing.T) {
	v := newEnv(t)
	v.devices(failsOnce, v1, "flaky")
	s := v.spec("b", "default", "2.0.0")
	s.RetryCount, s.RetryInterval = 1, 200*time.Millisecond
	v.upsert(s)
	st := v.waitFor("b", "completion", completed)
	v.sim.mu.Lock()
	defer v.sim.mu.Unlock()
	if st.Counts.Succeeded != 1 || v.sim.pushes["flaky"] != 2 {
		t.Fatalf("counts %+v after %d pushes", st.Counts, v.sim.pushes["flaky"])
	}
}

func TestRetriesExhausted(t *testing.T) {
	v := newEnv(t)
	v.devices(failsDownload, v1, "broken")
	s := v.spec("b", "default", "2.0.0")
	s.RetryCount, s.RetryInterval = 2, 50*time.Millisecond
	v.upsert(s)
	st := v.waitFor("b", "completion", completed)
	v.sim.mu.Lock()
	defer v.sim.mu.Unlock()
	if st.Counts.Failed != 1 || v.sim.pushes["broken"] != 3 {
		t.Fatalf("counts %+v after %d pushes, want failed after 3", st.Counts, v.sim.pushes["broken"])
	}
}

func TestTimeoutCountsFromFirstProgress(t *testing.T) {
	v := newEnv(t)
	v.devices(startsOnly, v1, "stuck")
	v.devices(ignores, v1, "offline")
	s := v.spec("b", "default", "2.0.0")
	s.Timeout = 300 * time.Millisecond
	v.upsert(s)
	st := v.waitFor("b", "a timeout", func(s Status) bool { return s.Counts.TimedOut == 1 })
	// The device that never reported progress is not timed out: the
	// timeout counts from the first progress report. It is pushed again
	// after each silence of the timeout, and fails as NoResponse after
	// the default three pushes.
	if st.Counts.TimedOut != 1 || st.Reasons[0].Reason != otav1.FailureTimeout {
		t.Fatalf("status %+v", st)
	}
	st = v.waitFor("b", "completion", completed)
	v.sim.mu.Lock()
	defer v.sim.mu.Unlock()
	if st.Counts.Failed != 1 || st.Counts.TimedOut != 1 || v.sim.pushes["offline"] != rollout.DefaultMaxPushes {
		t.Fatalf("counts %+v reasons %+v after %d pushes", st.Counts, st.Reasons, v.sim.pushes["offline"])
	}
}

// A device that takes the push, crashes and comes back on its old version
// is pushed maxPushes times, then fails as NoResponse and is not pushed
// again by the campaign, however often it reconnects.
func TestNoResponseAfterMaxPushes(t *testing.T) {
	v := newEnv(t)
	v.devices(ignores, v1, "crashy")
	s := v.spec("b", "default", "2.0.0")
	s.MaxPushes = 2
	v.upsert(s)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if st, _ := v.e.Status(v.ns, s.Ref); st.Phase == otav1.BatchCompleted {
			break
		}
		v.inform("crashy", "default", "1.0.0") // rebooted without the upgrade
		time.Sleep(20 * time.Millisecond)
	}
	st := v.waitFor("b", "completion", completed)
	for range 10 {
		v.inform("crashy", "default", "1.0.0")
	}
	// An inform that re-pushed would have queued the task again.
	if after, _ := v.e.Status(v.ns, s.Ref); after.Counts.Queued != 0 || after.Counts.Failed != 1 {
		t.Fatalf("after more reconnects: %+v", after.Counts)
	}
	v.sim.mu.Lock()
	defer v.sim.mu.Unlock()
	if st.Counts.Failed != 1 || len(st.Reasons) != 1 || st.Reasons[0].Reason != otav1.FailureNoResponse ||
		v.sim.pushes["crashy"] != 2 {
		t.Fatalf("counts %+v reasons %+v after %d pushes", st.Counts, st.Reasons, v.sim.pushes["crashy"])
	}
}

func TestCancelAndPause(t *testing.T) {
	v := newEnv(t)
	v.devices(upgrades, v1, names("d", 20)...)
	s := v.spec("b", "default", "2.0.0")
	s.Paused = true
	st := v.upsert(s)
	if st.Phase != otav1.BatchPaused || st.Counts.Queued != 20 {
		t.Fatalf("paused batch: %+v", st)
	}
	// Nothing is pushed while paused: give the loop many ticks.
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if v.sim.total.Load() != 0 {
			t.Fatal("a paused batch pushed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.Cancel = true
	st = v.upsert(s)
	if st.Phase != otav1.BatchCanceled || st.Counts.Canceled != 20 {
		t.Fatalf("canceled batch: %+v", st)
	}
	// Canceled devices are free for another campaign.
	v.upsert(v.spec("b2", "default", "2.0.0"))
	if st := v.waitFor("b2", "completion", completed); st.Counts.Succeeded != 20 {
		t.Fatalf("second batch %+v", st.Counts)
	}
}

func TestConfirmation(t *testing.T) {
	v := newEnv(t)
	v.devices(upgrades, v1, "mine", "other")
	s := v.spec("b", "default", "2.0.0")
	s.Confirm = true
	st := v.upsert(s)
	if st.Counts.Confirm != 2 {
		t.Fatalf("counts %+v", st.Counts)
	}
	if err := v.e.Confirm(v.pk, "mine"); err != nil {
		t.Fatal(err)
	}
	st = v.waitFor("b", "the confirmed device upgraded", func(s Status) bool { return s.Counts.Succeeded == 1 })
	if st.Counts.Confirm != 1 || v.sim.total.Load() != 1 {
		t.Fatalf("unconfirmed device pushed or lost: %+v", st.Counts)
	}
	if err := v.e.Confirm(v.pk, "nobody"); err == nil {
		t.Fatal("confirming an unknown device succeeded")
	}
}

func TestGrayPercentIsStable(t *testing.T) {
	v := newEnv(t)
	v.devices(upgrades, v1, names("d", 1000)...)
	s := v.spec("b", "default", "2.0.0")
	s.GrayPercent = 10
	st := v.upsert(s)
	if st.Counts.Total < 60 || st.Counts.Total > 140 {
		t.Fatalf("gray 10%% of 1000 selected %d", st.Counts.Total)
	}
	want := 0
	for _, n := range names("d", 1000) {
		if rollout.InGray(10, v.pk, n) {
			want++
		}
	}
	if int(st.Counts.Total) != want {
		t.Fatalf("selected %d, the stable hash says %d", st.Counts.Total, want)
	}
}

func TestWavesPauseAndPromote(t *testing.T) {
	v := newEnv(t)
	v.devices(upgrades, v1, names("d", 100)...)
	s := v.spec("b", "default", "2.0.0")
	s.Waves = []otav1.Wave{{Percent: 10, Pause: &otav1.WavePause{}}, {Percent: 100}}
	v.upsert(s)
	st := v.waitFor("b", "a pause after wave 1", func(s Status) bool { return s.Held != "" })
	if st.Counts.Succeeded != 10 || st.Phase != otav1.BatchPaused || st.CurrentWave != 1 {
		t.Fatalf("after wave 1: %+v", st)
	}
	s.PromotedWaves = 1
	v.upsert(s)
	st = v.waitFor("b", "completion", completed)
	if st.Counts.Succeeded != 100 || st.CurrentWave != 2 {
		t.Fatalf("after promotion: %+v", st)
	}
}

func TestWaveSuccessThresholdHolds(t *testing.T) {
	v := newEnv(t)
	v.devices(failsDownload, v1, names("a", 5)...) // sorted first: wave 1
	v.devices(upgrades, v1, names("b", 15)...)
	s := v.spec("b", "default", "2.0.0")
	s.Waves = []otav1.Wave{{Percent: 25, SuccessThreshold: 90}, {Percent: 100}}
	v.upsert(s)
	st := v.waitFor("b", "a hold for the threshold", func(s Status) bool { return s.Held != "" })
	if st.Counts.Failed != 5 || st.Counts.Queued != 15 {
		t.Fatalf("threshold hold: %+v", st)
	}
}

// A wave's retries are pushed although the next waves' tasks are queued
// before them: the wave ends, and the next one starts (found by the chaos
// harness: the retries waited behind wave 2 forever).
func TestWaveWaitsForItsRetries(t *testing.T) {
	v := newEnv(t)
	v.devices(failsOnce, v1, names("a", 5)...) // sorted first: wave 1
	v.devices(upgrades, v1, names("b", 15)...)
	s := v.spec("b", "default", "2.0.0")
	s.Waves = []otav1.Wave{{Percent: 25}, {Percent: 100}}
	s.RetryCount, s.RetryInterval = 1, 100*time.Millisecond
	v.upsert(s)
	st := v.waitFor("b", "completion", completed)
	if st.Counts.Succeeded != 20 || st.CurrentWave != 2 {
		t.Fatalf("waves with retries: %+v", st)
	}
}

func TestAbortThreshold(t *testing.T) {
	v := newEnv(t)
	v.devices(failsDownload, v1, names("a", 10)...)
	v.devices(upgrades, v1, names("z", 90)...)
	s := v.spec("b", "default", "2.0.0")
	s.RatePerMinute = 600 // 10/s: the abort comes before everything is pushed
	s.Abort = &otav1.AbortPolicy{MaxFailed: 2, MaxFailedPercent: 10, MinFinished: 5}
	v.upsert(s)
	st := v.waitFor("b", "abort", func(s Status) bool { return s.Phase == otav1.BatchAborted })
	if st.Aborted == "" || st.Counts.Canceled == 0 || st.Counts.Queued != 0 {
		t.Fatalf("aborted status %+v", st)
	}
}

// A List scope naming devices the inventory lacks skips them, and the
// status counts them with examples instead of dropping them silently.
func TestListScopeCountsUnknownDevices(t *testing.T) {
	v := newEnv(t)
	v.devices(upgrades, v1, "known-1", "known-2")
	s := v.spec("b", "default", "2.0.0")
	s.Devices = []string{"known-1", "ghost-1", "known-2", "ghost-2"}
	v.upsert(s)
	st := v.waitFor("b", "completion", completed)
	if st.Counts.Total != 2 || st.Counts.Succeeded != 2 || st.UnknownDevices != 2 ||
		len(st.UnknownExamples) != 2 || st.UnknownExamples[0] != "ghost-1" {
		t.Fatalf("counts %+v unknown %d %v", st.Counts, st.UnknownDevices, st.UnknownExamples)
	}
}
