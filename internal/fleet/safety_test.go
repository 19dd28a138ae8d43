package fleet

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/rollout"
)

// recordedTasks reads a campaign's task records from its UpgradeSlices on
// the API server, by device.
func recordedTasks(t *testing.T, ns, campaign string) map[string]otav1.DeviceTask {
	t.Helper()
	var list otav1.UpgradeSliceList
	if err := cp.Client.List(context.Background(), &list, client.InNamespace(ns),
		client.MatchingLabels{otav1.LabelCampaign: campaign}); err != nil {
		t.Fatal(err)
	}
	out := map[string]otav1.DeviceTask{}
	for _, s := range list.Items {
		for _, tk := range s.Tasks {
			out[tk.Device] = tk
		}
	}
	return out
}

// waitRecorded polls the UpgradeSlices until cond holds for the records.
func waitRecorded(t *testing.T, ns, campaign, what string, cond func(map[string]otav1.DeviceTask) bool) map[string]otav1.DeviceTask {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		recs := recordedTasks(t, ns, campaign)
		if cond(recs) {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not recorded; records %+v", campaign, what, recs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func countState(recs map[string]otav1.DeviceTask, s otav1.TaskState, reason string) int {
	n := 0
	for _, r := range recs {
		if r.State == s && r.Reason == reason {
			n++
		}
	}
	return n
}

// Devices on the target soak before they succeed; one that reports its old
// version meanwhile is Reverted for good, even when it reports the target
// again, and counts apart from the failures.
func TestSoakThenSucceedOrRevert(t *testing.T) {
	v := newEnv(t)
	devs := names("d", 20)
	v.devices(upgrades, v1, devs...)
	s := v.spec("b", "default", "2.0.0")
	s.Soak = 3 * time.Second
	v.upsert(s)
	st := v.waitFor("b", "all soaking", func(s Status) bool { return s.Counts.Soaking == 20 })
	if st.Phase != otav1.BatchRunning || st.Counts.Succeeded != 0 {
		t.Fatalf("while soaking: phase %s counts %+v", st.Phase, st.Counts)
	}
	for _, d := range devs[:3] {
		v.inform(d, "default", "1.0.0")
	}
	v.inform(devs[0], "default", "2.0.0") // back on the target: still Reverted
	v.inform(devs[5], "default", "2.0.0") // a repeat of the target changes nothing
	st = v.waitFor("b", "completion", completed)
	want := otav1.TaskCounts{Total: 20, Succeeded: 17, Reverted: 3}
	if st.Counts != want {
		t.Fatalf("counts %+v, want %+v", st.Counts, want)
	}
	if len(st.Reasons) != 1 || st.Reasons[0].Reason != otav1.FailureReverted || st.Reasons[0].Count != 3 {
		t.Fatalf("reasons %+v, want 3 Reverted", st.Reasons)
	}
	recs := waitRecorded(t, v.ns, "b", "the soak's end", func(r map[string]otav1.DeviceTask) bool {
		return countState(r, otav1.TaskSucceeded, "") == 17
	})
	for _, d := range devs {
		r := recs[d]
		if r.SoakStart == 0 {
			t.Errorf("%s: no soak start recorded: %+v", d, r)
		}
		if r.State == otav1.TaskSucceeded && r.Updated < r.SoakStart+3 {
			t.Errorf("%s succeeded at %d, before its soak (from %d) ended", d, r.Updated, r.SoakStart)
		}
	}
	if r := recs[devs[0]]; r.State != otav1.TaskFailed || r.Reason != otav1.FailureReverted || !strings.Contains(r.Message, "reported 1.0.0") {
		t.Fatalf("reverted device recorded as %+v", r)
	}
}

// A wave whose devices soak holds the next wave (gate Soak); reverts over
// abort.maxRevertedPercent abort the batch and cancel what was not pushed.
func TestWaveHeldBySoakAndAbortOnReverts(t *testing.T) {
	v := newEnv(t)
	devs := names("d", 20)
	v.devices(upgrades, v1, devs...)
	s := v.spec("b", "default", "2.0.0")
	s.Soak = time.Hour
	s.Waves = []otav1.Wave{{Percent: 20, SuccessThreshold: 50}, {Percent: 100}}
	pct := int32(25)
	s.Abort = &otav1.AbortPolicy{MinFinished: 1, MaxRevertedPercent: &pct}
	v.upsert(s)
	st := v.waitFor("b", "wave 1 held by its soak", func(s Status) bool { return s.Gate == otav1.GateSoak })
	if st.Counts.Soaking != 4 || st.Counts.Queued != 16 || st.CurrentWave != 1 || st.Phase != otav1.BatchRunning ||
		!strings.Contains(st.Held, "4 devices soaking") {
		t.Fatalf("held by the soak: %+v", st)
	}
	v.inform(devs[0], "default", "1.0.0") // 1 of 1 judged: over 25%
	st = v.waitFor("b", "abort", func(s Status) bool { return s.Phase == otav1.BatchAborted })
	want := otav1.TaskCounts{Total: 20, Soaking: 3, Reverted: 1, Canceled: 16}
	if st.Counts != want || !strings.Contains(st.Aborted, "1 of 1 devices whose soak ended reverted") {
		t.Fatalf("aborted: counts %+v (want %+v), %q", st.Counts, want, st.Aborted)
	}
}

// A restart during the soak rebuilds every soak from the UpgradeSlices:
// the soak ends when it would have, reverts before and after the restart
// are counted exactly, and no device is pushed twice.
func TestRestartDuringSoak(t *testing.T) {
	v := newEnv(t)
	devs := names("d", 50)
	v.devices(upgrades, v1, devs...)
	s := v.spec("b", "default", "2.0.0")
	s.Soak = 6 * time.Second
	v.upsert(s)
	v.waitFor("b", "all soaking", func(s Status) bool { return s.Counts.Soaking == 50 })
	for _, d := range devs[:5] {
		v.inform(d, "default", "1.0.0")
	}
	before := waitRecorded(t, v.ns, "b", "soaks and reverts", func(r map[string]otav1.DeviceTask) bool {
		return countState(r, otav1.TaskSoaking, "") == 45 && countState(r, otav1.TaskFailed, otav1.FailureReverted) == 5
	})
	v.restart()
	s.SelectionComplete = true
	st := v.upsert(s)
	if want := (otav1.TaskCounts{Total: 50, Soaking: 45, Reverted: 5}); st.Counts != want {
		t.Fatalf("rebuilt counts %+v, want %+v", st.Counts, want)
	}
	for _, d := range devs[5:10] {
		v.inform(d, "default", "1.1.0") // another version: a revert too
	}
	st = v.waitFor("b", "completion", completed)
	if want := (otav1.TaskCounts{Total: 50, Succeeded: 40, Reverted: 10}); st.Counts != want {
		t.Fatalf("counts %+v, want %+v", st.Counts, want)
	}
	after := waitRecorded(t, v.ns, "b", "the soak's end", func(r map[string]otav1.DeviceTask) bool {
		return countState(r, otav1.TaskSucceeded, "") == 40
	})
	for _, d := range devs[10:] {
		if b, a := before[d], after[d]; a.SoakStart != b.SoakStart || a.Updated < b.SoakStart+6 {
			t.Errorf("%s: soak from %d before the restart, %+v after", d, b.SoakStart, a)
		}
	}
	v.sim.mu.Lock()
	defer v.sim.mu.Unlock()
	for _, d := range devs {
		if p := v.sim.pushes[d]; p != 1 {
			t.Errorf("device %s pushed %d times; want once", d, p)
		}
	}
}

// stays checks cond on every poll for the whole of d and fails at the
// first poll where it does not hold: it asserts that something does not
// happen, which no wait can show. d spans many engine ticks (10 ms).
func stays(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if err := cond(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
}

// fakeClock is a time the test moves; the engine reads it under its lock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Pushes wait for a maintenance window, go on while it is open, stop when
// it closes, and resume with the next one.
func TestMaintenanceWindowGatesPushes(t *testing.T) {
	v := newEnv(t)
	clock := &fakeClock{now: time.Date(2026, 12, 2, 2, 30, 0, 0, time.UTC)} // after today's window
	v.e.mu.Lock()
	v.e.now = clock.Now
	v.e.unlock()
	devs := names("d", 30)
	v.devices(upgrades, v1, devs...)
	s := v.spec("b", "default", "2.0.0")
	s.RatePerMinute = 600 // 10 a second of the fake clock
	ws, err := rollout.ParseWindows([]otav1.MaintenanceWindow{{Schedule: "0 2 * * *",
		Duration: metav1.Duration{Duration: time.Hour}, TimeZone: "Europe/Berlin"}}) // 01:00-02:00 UTC
	if err != nil {
		t.Fatal(err)
	}
	s.Windows = ws
	st := v.upsert(s)
	nextOpen := time.Date(2026, 12, 3, 1, 0, 0, 0, time.UTC)
	if st.Window.Open || !st.Window.Until.Equal(nextOpen) || st.Counts.Queued != 30 {
		t.Fatalf("before the window: window %+v counts %+v", st.Window, st.Counts)
	}
	if st.NextCheck > rollout.MaxCheck {
		t.Fatalf("next check %s", st.NextCheck)
	}
	// The engine ticks on (every 10 ms): nothing is pushed while the
	// window is shut.
	stays(t, 300*time.Millisecond, "no push outside the window", func() error {
		if n := v.sim.total.Load(); n != 0 {
			return fmt.Errorf("%d pushes", n)
		}
		return nil
	})
	clock.Set(nextOpen.Add(time.Second)) // the window opens: the burst of 10 goes
	st = v.waitFor("b", "the first pushes", func(s Status) bool { return s.Counts.Succeeded >= 10 })
	if !st.Window.Open || !st.Window.Until.Equal(nextOpen.Add(time.Hour)) {
		t.Fatalf("in the window: %+v", st.Window)
	}
	clock.Set(nextOpen.Add(time.Hour)) // closed, with tokens for everything
	pushed := v.sim.total.Load()
	stays(t, 300*time.Millisecond, "no push after the close", func() error {
		if n := v.sim.total.Load(); n != pushed {
			return fmt.Errorf("%d pushes, %d at the close", n, pushed)
		}
		return nil
	})
	st, _ = v.e.Status(v.ns, otav1.CampaignReference{Kind: otav1.KindUpgradeBatch, Name: "b"})
	if st.Window.Open || st.Counts.Queued == 0 {
		t.Fatalf("after the close: window %+v, counts %+v", st.Window, st.Counts)
	}
	// The next night the clock runs, a second every 10 ms, so that the
	// rate lets the rest go.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for at := nextOpen.Add(24 * time.Hour); ; at = at.Add(time.Second) {
			clock.Set(at)
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	st = v.waitFor("b", "completion the next night", completed)
	if st.Counts.Succeeded != 30 {
		t.Fatalf("counts %+v", st.Counts)
	}
}

// A retry that falls due outside the window waits for the next one.
func TestRetryWaitsForTheWindow(t *testing.T) {
	v := newEnv(t)
	open := time.Date(2026, 12, 2, 2, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: open.Add(time.Second)}
	v.e.mu.Lock()
	v.e.now = clock.Now
	v.e.unlock()
	v.devices(failsOnce, v1, "flaky")
	s := v.spec("b", "default", "2.0.0")
	s.RetryCount, s.RetryInterval = 1, time.Minute
	ws, err := rollout.ParseWindows([]otav1.MaintenanceWindow{{Schedule: "0 2 * * *", Duration: metav1.Duration{Duration: time.Hour}}})
	if err != nil {
		t.Fatal(err)
	}
	s.Windows = ws
	v.upsert(s)
	v.waitFor("b", "the failure waiting for its retry", func(s Status) bool {
		return s.Counts.Queued == 1 && len(s.Reasons) == 0 && v.sim.total.Load() == 1
	})
	clock.Set(open.Add(90 * time.Minute)) // the retry is due, the window shut
	stays(t, 300*time.Millisecond, "no retry outside the window", func() error {
		if n := v.sim.total.Load(); n != 1 {
			return fmt.Errorf("%d pushes", n)
		}
		return nil
	})
	clock.Set(open.Add(24*time.Hour + time.Second))
	st := v.waitFor("b", "the retry in the next window", completed)
	if st.Counts.Succeeded != 1 || v.sim.total.Load() != 2 {
		t.Fatalf("counts %+v after %d pushes", st.Counts, v.sim.total.Load())
	}
}

// A device busy soaking in the WiFi batch is taken by the dynamic MCU
// batch once its soak ends, without reporting again.
func TestSoakEndFreesDeviceForOtherModules(t *testing.T) {
	v := newEnv(t)
	v.devices(upgrades, map[string]string{"wifi": "1.0.0", "mcu": "2.0.0"}, "dev")
	wifi := v.spec("wifi", "wifi", "1.1.0")
	wifi.Soak = 2 * time.Second
	mcu := v.spec("mcu", "mcu", "2.2.0")
	mcu.Dynamic, mcu.SourceVersions = true, []string{"2.0.0"}
	v.upsert(wifi)
	v.waitFor("wifi", "WiFi soaking", func(s Status) bool { return s.Counts.Soaking == 1 })
	if st := v.upsert(mcu); st.Counts.Failed != 1 || st.Reasons[0].Reason != otav1.FailureBusy {
		t.Fatalf("the MCU batch should find the soaking device busy: %+v", st)
	}
	v.waitFor("wifi", "WiFi soaked", func(s Status) bool { return s.Counts.Succeeded == 1 })
	st := v.waitFor("mcu", "MCU upgraded", func(s Status) bool { return s.Counts.Succeeded == 1 })
	if st.Counts.Failed != 0 || st.Counts.Total != 1 {
		t.Fatalf("MCU batch: %+v", st.Counts)
	}
}
