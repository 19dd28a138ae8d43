package chaos

import (
	"os"
	"strings"
	"testing"
	"time"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/devicesim"
)

// The exact check must pass on records that agree and name every kind of
// disagreement; these cases need no servers.

func attempt(o devicesim.Outcome) devicesim.Attempt {
	return devicesim.Attempt{Module: otav1.DefaultModule, Version: "2.0.0", Outcome: o, Flashed: o == devicesim.OutcomeSucceeded}
}

// agreeing is a fleet of three after one rollout to 2.0.0 with records
// that agree: a retry that succeeded, a device that failed every attempt,
// and one that succeeded at once.
func agreeing() (*snapshot, []devicesim.DeviceStatus) {
	dev := func(name, version string, as ...devicesim.Attempt) devicesim.DeviceStatus {
		return devicesim.DeviceStatus{Name: name, Versions: map[string]string{otav1.DefaultModule: version}, History: as}
	}
	devices := []devicesim.DeviceStatus{
		dev("a", "2.0.0", attempt(devicesim.OutcomeDownloadFailed), attempt(devicesim.OutcomeSucceeded)),
		dev("b", "1.0.0", attempt(devicesim.OutcomeFlashFailed), attempt(devicesim.OutcomeFlashFailed), attempt(devicesim.OutcomeFlashFailed)),
		dev("c", "2.0.0", attempt(devicesim.OutcomeSucceeded)),
	}
	ub := otav1.UpgradeBatch{}
	ub.Name = "to-2.0.0"
	ub.Spec.Retry = &otav1.RetryPolicy{Count: 2}
	ub.Status = otav1.UpgradeBatchStatus{Phase: otav1.BatchCompleted, Slices: 1,
		Counts:         otav1.TaskCounts{Total: 3, Succeeded: 2, Failed: 1},
		FailureReasons: []otav1.ReasonCount{{Reason: otav1.FailureFlash, Count: 1}}}
	us := otav1.UpgradeSlice{Tasks: otav1.TaskList{
		{Device: "a", State: otav1.TaskSucceeded, Attempt: 2},
		{Device: "b", State: otav1.TaskFailed, Reason: otav1.FailureFlash, Attempt: 3},
		{Device: "c", State: otav1.TaskSucceeded, Attempt: 1},
	}}
	ds := otav1.DeviceSlice{}
	for _, d := range devices {
		ds.Devices = append(ds.Devices, otav1.DeviceRecord{Name: d.Name,
			Modules: []otav1.ModuleVersion{{Module: otav1.DefaultModule, Version: d.Versions[otav1.DefaultModule]}}})
	}
	p := otav1.Product{}
	p.Status.Devices = 3
	p.Status.Modules = []otav1.ModuleVersions{{Module: otav1.DefaultModule, Versions: []otav1.VersionCount{
		{Version: "2.0.0", Devices: 2}, {Version: "1.0.0", Devices: 1}}}}
	return &snapshot{batches: []otav1.UpgradeBatch{ub}, tasks: map[string][]otav1.UpgradeSlice{ub.Name: {us}},
		devices: []otav1.DeviceSlice{ds}, product: p}, devices
}

func TestCheckAgreeingRecords(t *testing.T) {
	s, devices := agreeing()
	if f := check(s, devices, devicesim.Summary{}); f.count() != 0 {
		t.Fatalf("records that agree: %v", f.problems)
	}
}

func TestCheckNamesEveryDisagreement(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mutate  func(*snapshot, []devicesim.DeviceStatus)
		lost    int
		double  int64
		reflash int
		stuck   int
		want    string
	}{
		{"a success counted as timed out", func(s *snapshot, _ []devicesim.DeviceStatus) {
			s.tasks["to-2.0.0"][0].Tasks[2].State = otav1.TaskTimedOut
		}, 1, 0, 0, 0, "c: task TIMED_OUT"},
		{"a task left notified", func(s *snapshot, _ []devicesim.DeviceStatus) {
			s.tasks["to-2.0.0"][0].Tasks[0].State = otav1.TaskNotified
		}, 1, 0, 0, 1, "a: task still NOTIFIED"},
		{"the same image flashed twice", func(_ *snapshot, d []devicesim.DeviceStatus) {
			d[2].History = append(d[2].History, attempt(devicesim.OutcomeSucceeded))
		}, 0, 0, 1, 0, "c flashed default 2.0.0 2 times"},
		{"an inventory on the old version", func(s *snapshot, _ []devicesim.DeviceStatus) {
			s.devices[0].Devices[0].Modules[0].Version = "1.0.0"
		}, 1, 0, 0, 0, `a on "1.0.0"`},
		{"a counter above the devices", func(s *snapshot, _ []devicesim.DeviceStatus) {
			s.batches[0].Status.Counts.Succeeded = 3
		}, 0, 1, 0, 0, "status counts"},
		{"a reason miscounted", func(s *snapshot, _ []devicesim.DeviceStatus) {
			s.batches[0].Status.FailureReasons[0].Count = 2
		}, 0, 0, 0, 0, "failure reasons"},
		{"a failure not retried", func(s *snapshot, d []devicesim.DeviceStatus) {
			d[1].History = d[1].History[:1]
			s.tasks["to-2.0.0"][0].Tasks[1].Attempt = 1
		}, 0, 0, 0, 0, "b: failed for good after 1 attempts; the batch allows 3"},
		{"the Product's distribution", func(s *snapshot, _ []devicesim.DeviceStatus) {
			s.product.Status.Modules[0].Versions[1].Devices = 2
		}, 0, 0, 0, 0, "Product: 3 devices"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, devices := agreeing()
			tc.mutate(s, devices)
			f := check(s, devices, devicesim.Summary{})
			var all string
			for _, lines := range f.problems {
				all += strings.Join(lines, "\n") + "\n"
			}
			if len(f.lost) != tc.lost || f.double != tc.double || len(f.reflashed) != tc.reflash || f.stuck != tc.stuck ||
				!strings.Contains(all, tc.want) {
				t.Fatalf("lost %d, double %d, re-flashed %d, stuck %d; want %d, %d, %d, %d and a line with %q:\n%s",
					len(f.lost), f.double, len(f.reflashed), f.stuck, tc.lost, tc.double, tc.reflash, tc.stuck, tc.want, all)
			}
		})
	}
}

// A failure report sent while a broker without persistence was down may
// leave its task timed out, and a lost inform the inventory on the version
// before; nothing else, and nowhere else.
func TestCheckExplainsOnlyLossInALossyWindow(t *testing.T) {
	at := time.Date(2026, 12, 2, 13, 0, 0, 0, time.UTC)
	lossy := window{from: at.Add(-time.Second), to: at.Add(2 * time.Second)}
	for _, tc := range []struct {
		name      string
		windows   []window
		explained int
		problems  int
	}{{"in the window", []window{lossy}, 2, 0}, {"without a window", nil, 0, 3}} {
		t.Run(tc.name, func(t *testing.T) {
			s, devices := agreeing()
			devices[1].History[2].Reported = at // b's last failure report
			s.tasks["to-2.0.0"][0].Tasks[1].State, s.tasks["to-2.0.0"][0].Tasks[1].Reason = otav1.TaskTimedOut, ""
			s.batches[0].Status.Counts.Failed, s.batches[0].Status.Counts.TimedOut = 0, 1
			s.batches[0].Status.FailureReasons = nil
			devices[2].History[0].Reported = at // c's inform of 2.0.0
			s.devices[0].Devices[2].Modules[0].Version = "1.0.0"
			s.product.Status.Modules[0].Versions = []otav1.VersionCount{{Version: "2.0.0", Devices: 1}, {Version: "1.0.0", Devices: 2}}
			f := check(s, devices, devicesim.Summary{}, tc.windows...)
			if len(f.explained) != tc.explained || f.count() < tc.problems || (tc.problems == 0 && f.count() != 0) {
				t.Fatalf("explained %q, problems %v", f.explained, f.problems)
			}
		})
	}
}

func TestWatchSeesCountersGoBackwards(t *testing.T) {
	w := &watch{last: map[string]map[string]int64{}}
	ub := otav1.UpgradeBatch{}
	ub.Name = "to-2.0.0"
	for _, succeeded := range []int64{5, 9, 9, 7, 8} {
		ub.Status.Counts.Succeeded = succeeded
		w.observe([]otav1.UpgradeBatch{ub}, ub.CreationTimestamp.Time)
	}
	if len(w.events) != 1 || !strings.Contains(w.events[0], "succeeded went backwards, 9 -> 7") {
		t.Fatalf("events %q", w.events)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, secondsOf(i))
	}
	if p50, p99 := percentile(d, 50), percentile(d, 99); p50 != secondsOf(50) || p99 != secondsOf(99) {
		t.Fatalf("p50 %s p99 %s", p50, p99)
	}
	if percentile(nil, 50) != 0 || percentile(d[99:], 99) != secondsOf(1) {
		t.Fatal("percentiles of no or one kill")
	}
}

func TestParseMetrics(t *testing.T) {
	m, err := parseMetrics(strings.NewReader("# HELP x\notafleet_mqtt_connected 1\notafleet_fleet_devices 2000\nother 3\n" +
		`otafleet_fleet_pushes_total{result="failed"} 1` + "\n" + `otafleet_fleet_pushes_total{result="sent"} 7` + "\n"))
	if err != nil || !m.connected || m.devices != 2000 || m.pushes != 7 {
		t.Fatalf("%+v %v", m, err)
	}
}

func secondsOf(n int) time.Duration { return time.Duration(n) * time.Second }

// The run's shape from the environment: make test's default adds a
// persistent broker's restart to its kills, a fault run kills nothing
// unless asked to, and replicas means leader kills with a standby.
func TestConfigFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env             map[string]string
		faults          string
		kills, replicas int
		lease           string
	}{
		{nil, defaultFaults, 4, 2, ""}, // make test: the replicas fault adds a kill and a standby
		{map[string]string{"CHAOS_FAULTS": ""}, "", 3, 1, ""},
		{map[string]string{"CHAOS_FAULTS": "minio,apiserver"}, "minio,apiserver", 0, 1, ""},
		{map[string]string{"CHAOS_FAULTS": "minio", "CHAOS_KILLS": "5"}, "minio", 5, 1, ""},
		{map[string]string{"CHAOS_FAULTS": "replicas", "CHAOS_FAULT_REPEAT": "4", "CHAOS_LEASE": "6s,4s,1s"}, "replicas", 4, 2,
			"--leader-elect-lease-duration 6s --leader-elect-renew-deadline 4s --leader-elect-retry-period 1s"},
	} {
		for _, name := range []string{"CHAOS_FAULTS", "CHAOS_KILLS", "CHAOS_FAULT_REPEAT", "CHAOS_LEASE", "CHAOS_REPLICAS"} {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		c := configFromEnv(t)
		if got := strings.Join(c.faults, ","); got != tc.faults || c.kills != tc.kills || c.replicas != tc.replicas ||
			strings.Join(c.leaseFlags(), " ") != tc.lease {
			t.Errorf("%v: faults %q, %d kills, %d replicas, lease %q", tc.env, got, c.kills, c.replicas, c.leaseFlags())
		}
	}
}
