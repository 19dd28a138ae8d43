package fleet

import (
	"strings"
	"testing"
	"time"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

func TestDynamicPicksUpLateDevice(t *testing.T) {
	v := newEnv(t)
	v.devices(upgrades, v1, "early")
	s := v.spec("b", "default", "2.0.0")
	s.Dynamic = true
	s.SourceVersions = []string{"1.0.0"}
	v.upsert(s)
	v.waitFor("b", "the early device", func(s Status) bool { return s.Counts.Succeeded == 1 })
	v.devices(upgrades, v1, "late")
	v.devices(upgrades, map[string]string{"default": "0.9.0"}, "other-source")
	st := v.waitFor("b", "the late device", func(s Status) bool { return s.Counts.Succeeded == 2 })
	if st.Phase != otav1.BatchRunning || st.Counts.Total != 2 {
		t.Fatalf("a dynamic batch keeps running and skips other sources: %+v", st)
	}
}

func TestBusyDeviceAndOverwrite(t *testing.T) {
	v := newEnv(t)
	v.devices(upgrades, v1, "d1", "d2")
	first := v.spec("first", "default", "2.0.0")
	first.Confirm = true // holds both devices in CONFIRM
	v.upsert(first)

	busy := v.upsert(v.spec("second", "default", "3.0.0"))
	if busy.Counts.Failed != 2 || len(busy.Reasons) != 1 || busy.Reasons[0].Reason != otav1.FailureBusy ||
		!strings.Contains(busy.Reasons[0].Example, "UpgradeBatch/first") {
		t.Fatalf("busy devices: %+v", busy)
	}

	over := v.spec("third", "default", "3.0.0")
	over.Overwrite = true
	v.upsert(over)
	st := v.waitFor("third", "completion", completed)
	if st.Counts.Succeeded != 2 {
		t.Fatalf("overwrite: %+v", st.Counts)
	}
	fst, _ := v.e.Status(v.ns, first.Ref)
	if fst.Counts.Canceled != 2 {
		t.Fatalf("the overwritten campaign should show its tasks canceled: %+v", fst.Counts)
	}
}

// The console guide's multi-module scenario: WiFi 1.0.0 / MCU 2.0.0, two
// dynamic batches created together; the MCU batch finds the device busy,
// then takes it once WiFi is done and the device informs MCU 2.0.0 again.
func TestMultiModuleScenario(t *testing.T) {
	v := newEnv(t)
	v.devices(upgrades, map[string]string{"wifi": "1.0.0", "mcu": "2.0.0"}, "dev")
	wifi := v.spec("wifi", "wifi", "1.1.0")
	wifi.Dynamic, wifi.SourceVersions, wifi.Confirm = true, []string{"1.0.0"}, true
	mcu := v.spec("mcu", "mcu", "2.2.0")
	mcu.Dynamic, mcu.SourceVersions = true, []string{"2.0.0"}
	v.upsert(wifi)
	if st := v.upsert(mcu); st.Counts.Failed != 1 || st.Reasons[0].Reason != otav1.FailureBusy {
		t.Fatalf("the MCU batch should record the device busy: %+v", st)
	}
	if err := v.e.Confirm(v.pk, "dev"); err != nil {
		t.Fatal(err)
	}
	v.waitFor("wifi", "WiFi upgraded", func(s Status) bool { return s.Counts.Succeeded == 1 })
	v.inform("dev", "mcu", "2.0.0") // after the reboot the device reports every module
	st := v.waitFor("mcu", "MCU upgraded", func(s Status) bool { return s.Counts.Succeeded == 1 })
	if st.Counts.Failed != 0 || st.Counts.Total != 1 {
		t.Fatalf("MCU batch: %+v", st.Counts)
	}
	v.sim.mu.Lock()
	defer v.sim.mu.Unlock()
	if m := v.sim.modules["dev"]; m["wifi"] != "1.1.0" || m["mcu"] != "2.2.0" {
		t.Fatalf("device ends at %v", m)
	}
}

// The device's reboot reports can be handled in any order: when its report
// of the other module came before the WiFi success, the MCU batch takes
// the device when the WiFi success frees it, without another report.
func TestFreedDeviceOfferedToOtherModules(t *testing.T) {
	v := newEnv(t)
	v.devices(upgrades, map[string]string{"wifi": "1.0.0", "mcu": "2.0.0"}, "dev")
	wifi := v.spec("wifi", "wifi", "1.1.0")
	wifi.Dynamic, wifi.SourceVersions = true, []string{"1.0.0"}
	mcu := v.spec("mcu", "mcu", "2.2.0")
	mcu.Dynamic, mcu.SourceVersions = true, []string{"2.0.0"}
	v.upsert(wifi)
	v.upsert(mcu)
	st := v.waitFor("mcu", "MCU upgraded", func(s Status) bool { return s.Counts.Succeeded == 1 })
	if st.Counts.Failed != 0 || st.Counts.Total != 1 {
		t.Fatalf("MCU batch: %+v", st.Counts)
	}
	v.sim.mu.Lock()
	defer v.sim.mu.Unlock()
	if m := v.sim.modules["dev"]; m["wifi"] != "1.1.0" || m["mcu"] != "2.2.0" {
		t.Fatalf("device ends at %v", m)
	}
}

// A restart in the middle of a rollout: the new engine rebuilds from the
// slices and every device ends in the right state with exact counters.
func TestRestartMidRollout(t *testing.T) {
	v := newEnv(t)
	devs := names("d", 2000)
	v.devices(upgrades, v1, devs[:1500]...)
	v.devices(failsDownload, v1, devs[1500:1600]...)
	v.devices(ignores, v1, devs[1600:]...)
	s := v.spec("b", "default", "2.0.0")
	s.RatePerMinute = 60000 // 1000/s: the restart lands mid-way
	v.upsert(s)
	v.waitFor("b", "a few hundred done", func(s Status) bool { return s.Counts.Succeeded+s.Counts.Failed >= 300 })
	v.restart()
	s.SelectionComplete = true // the reconciler reads it from status
	v.upsert(s)
	st := v.waitFor("b", "all answered", func(s Status) bool {
		return s.Counts.Succeeded == 1500 && s.Counts.Failed == 100 && s.Counts.Notified == 400
	})
	if st.Counts.Total != 2000 || st.Counts.Queued != 0 {
		t.Fatalf("counts after restart %+v", st.Counts)
	}
	v.sim.mu.Lock()
	defer v.sim.mu.Unlock()
	for _, n := range devs[:1500] {
		if p := v.sim.pushes[n]; p != 1 {
			t.Fatalf("device %s pushed %d times; want exactly once across the restart", n, p)
		}
	}
}

// A device that was offline when pushed informs its old version when it
// comes back, and is pushed again without that counting as a retry.
func TestRepushOnReconnect(t *testing.T) {
	v := newEnv(t)
	v.devices(offlineOnce, v1, "sleepy")
	v.upsert(v.spec("b", "default", "2.0.0"))
	v.waitFor("b", "the first push", func(s Status) bool { return s.Counts.Notified == 1 })
	deadline := time.Now().Add(10 * time.Second)
	for v.e.Stats().Repushed == 0 && time.Now().Before(deadline) {
		v.inform("sleepy", "default", "1.0.0") // back online
		time.Sleep(20 * time.Millisecond)
	}
	st := v.waitFor("b", "completion", completed)
	v.sim.mu.Lock()
	defer v.sim.mu.Unlock()
	// The counts, not st.Devices: a finished batch may already have
	// released its tasks once they were written.
	if st.Counts.Total != 1 || st.Counts.Succeeded != 1 || v.sim.pushes["sleepy"] != 2 {
		t.Fatalf("counts %+v after %d pushes", st.Counts, v.sim.pushes["sleepy"])
	}
}
