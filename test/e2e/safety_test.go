package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/lab"
)

// Devices that roll back after informing the target (the simulator's
// revert plan) are caught by the soak: Reverted, counted apart from the
// failures, while the others succeed once their soak ends; `kubectl get
// ub` shows both counts.
func scenarioSoak(t *testing.T, l *lab.Lab) {
	s := newScene(t, l, "soak")
	f := s.startFleet(devicesim.Config{Devices: 20, Seed: 5,
		Failures: devicesim.Failures{Revert: 0.25, RevertAfter: 500 * time.Millisecond}})
	reverting := int64(len(byPlan(f)[devicesim.PlanRevert]))
	if reverting == 0 || reverting == 20 {
		t.Fatalf("seed 5 gives %d of 20 devices the revert plan; pick another seed", reverting)
	}
	start := time.Now()
	ub := s.batch("soak", s.firmware("2.0.0"), func(spec *otav1.UpgradeBatchSpec) {
		spec.Soak = &metav1.Duration{Duration: 5 * time.Second}
	})
	s.wait(ub, "devices soaking", waitLong, func(b *otav1.UpgradeBatch) bool { return b.Status.Counts.Soaking > 0 })
	if ub.Status.Phase != otav1.BatchRunning || ub.Status.Counts.Succeeded != 0 {
		t.Fatalf("a device succeeded before its soak ended:\n%s", s.describe(ub))
	}
	s.wait(ub, "every revert caught", waitLong, func(b *otav1.UpgradeBatch) bool { return b.Status.Counts.Reverted == reverting })
	s.wait(ub, "the batch to complete", waitLong, lab.Finished)
	if took := time.Since(start); took < 5*time.Second {
		t.Fatalf("completed after %s, before any soak could end", took)
	}
	s.wantCounts(ub, otav1.TaskCounts{Total: 20, Succeeded: 20 - reverting, Reverted: reverting})
	s.wantReasons(ub, map[string]int64{otav1.FailureReverted: reverting})
	if c := condition(ub, otav1.ConditionReady); c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, fmt.Sprintf("%d reverted", reverting)) {
		t.Fatalf("Ready: %+v", c)
	}
	row := printedRow(t, l, ub)
	if row["Soaking"] != "" || row["Reverted"] != fmt.Sprint(reverting) || row["Succeeded"] != fmt.Sprint(20-reverting) {
		t.Fatalf("kubectl get ub shows %v", row)
	}
}

// A first wave that reverts aborts the batch before the second wave
// starts: the wave is held by its soak, the reverts are over
// abort.maxRevertedPercent, and the rest is canceled.
func scenarioRevertAbort(t *testing.T, l *lab.Lab) {
	s := newScene(t, l, "revabort")
	s.startFleet(devicesim.Config{Devices: 20, Seed: 1,
		Failures: devicesim.Failures{Revert: 1, RevertAfter: 5 * time.Second}}) // time to see the soak gate
	pct := int32(20)
	ub := s.batch("revabort", s.firmware("2.0.0"), func(spec *otav1.UpgradeBatchSpec) {
		spec.Soak = &metav1.Duration{Duration: time.Hour}
		spec.Waves = []otav1.Wave{{Percent: 10, SuccessThreshold: 90}, {Percent: 100}}
		spec.Abort = &otav1.AbortPolicy{MinFinished: 1, MaxRevertedPercent: &pct}
	})
	s.wait(ub, "wave 1 held by its soak", waitLong, func(b *otav1.UpgradeBatch) bool {
		return b.Status.WaveGate != nil && b.Status.WaveGate.Gate == otav1.GateSoak || lab.Finished(b)
	})
	if g := ub.Status.WaveGate; g == nil || g.Wave != 1 || !strings.Contains(g.Message, "2 devices soaking") ||
		condition(ub, otav1.ConditionReconciling).Reason != otav1.ReasonSoaking {
		t.Fatalf("wave gate %+v:\n%s", g, s.describe(ub))
	}
	s.wait(ub, "the abort", waitLong, lab.Finished)
	if ub.Status.Phase != otav1.BatchAborted || ub.Status.CurrentWave != 1 {
		t.Fatalf("not aborted in wave 1:\n%s", s.describe(ub))
	}
	// The first revert aborts; the other device of wave 1 soaks on (an
	// abort cancels only what was not pushed) until it reverts too.
	s.wait(ub, "the second revert", waitLong, func(b *otav1.UpgradeBatch) bool { return b.Status.Counts.Soaking == 0 })
	s.wantCounts(ub, otav1.TaskCounts{Total: 20, Reverted: 2, Canceled: 18})
	if c := condition(ub, otav1.ConditionStalled); c.Reason != otav1.ReasonAborted || !strings.Contains(c.Message, "devices whose soak ended reverted, more than the 20% allowed") {
		t.Fatalf("Stalled: %+v", c)
	}
}

// A batch outside its maintenance window selects its devices and waits,
// saying until when; pushes start when the window opens (a short window,
// in a zone that is not UTC), and a schedule that does not parse stalls
// its batch with the parser's message.
func scenarioWindow(t *testing.T, l *lab.Lab) {
	s := newScene(t, l, "window")
	f := s.startFleet(devicesim.Config{Devices: 10})
	fw := s.firmware("2.0.0")
	zone, err := time.LoadLocation("Asia/Kolkata") // UTC+05:30: a zone with minutes
	if err != nil {
		t.Fatal(err)
	}
	opens := time.Now().Add(12 * time.Second).Truncate(time.Second).In(zone)
	ub := s.batch("window", fw, func(spec *otav1.UpgradeBatchSpec) {
		spec.MaintenanceWindows = []otav1.MaintenanceWindow{{
			Schedule: fmt.Sprintf("%d %d %d * * *", opens.Second(), opens.Minute(), opens.Hour()),
			Duration: metav1.Duration{Duration: time.Minute}, TimeZone: "Asia/Kolkata"}}
	})
	s.wait(ub, "the wait for the window", waitLong, func(b *otav1.UpgradeBatch) bool {
		return condition(b, otav1.ConditionReconciling).Reason == otav1.ReasonOutsideWindow
	})
	if w := ub.Status.Window; w == nil || w.Open || w.NextOpen == nil || !w.NextOpen.Equal(&metav1.Time{Time: opens}) ||
		ub.Status.Counts.Queued != 10 {
		t.Fatalf("window status %+v, want closed until %s:\n%s", w, opens.UTC(), s.describe(ub))
	}
	// Until a second before the opening, no device is pushed.
	s.holds(time.Until(opens)-time.Second, "no push before the window", func() error {
		if n := f.Summary().PushesReceived; n > 0 {
			return fmt.Errorf("%d pushes before the window opened at %s", n, opens.UTC())
		}
		return nil
	})
	s.wait(ub, "the batch to complete in the window", waitLong, lab.Finished)
	s.wantCounts(ub, otav1.TaskCounts{Total: 10, Succeeded: 10})
	if ub.Status.StartTime == nil || ub.Status.StartTime.Time.Before(opens) {
		t.Fatalf("first push at %v, before the window opened at %s", ub.Status.StartTime, opens.UTC())
	}

	bad := s.batch("bad-window", fw, func(spec *otav1.UpgradeBatchSpec) {
		spec.MaintenanceWindows = []otav1.MaintenanceWindow{{Schedule: "0 25 * * *", Duration: metav1.Duration{Duration: time.Hour}}}
	})
	s.wait(bad, "a Stalled condition", waitLong, func(b *otav1.UpgradeBatch) bool {
		return condition(b, otav1.ConditionStalled).Status == metav1.ConditionTrue
	})
	if c := condition(bad, otav1.ConditionStalled); c.Reason != otav1.ReasonInvalidSpec ||
		!strings.Contains(c.Message, `spec.maintenanceWindows[0].schedule "0 25 * * *" does not read as cron`) {
		t.Fatalf("Stalled: %+v", c)
	}
}

// printedRow reads a batch as `kubectl get ub` prints it (the API server's
// table of the CRD's printer columns), by column name; a column with no
// value is left out.
func printedRow(t *testing.T, l *lab.Lab, ub *otav1.UpgradeBatch) map[string]string {
	t.Helper()
	cfg := rest.CopyConfig(l.ControlPlane.Config)
	cfg.GroupVersion = &otav1.GroupVersion
	cfg.APIPath = "/apis"
	cfg.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	rc, err := rest.RESTClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rc.Get().Namespace(ub.Namespace).Resource("upgradebatches").Name(ub.Name).
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var table metav1.Table
	if err := json.Unmarshal(raw, &table); err != nil {
		t.Fatal(err)
	}
	if len(table.Rows) != 1 {
		t.Fatalf("table of %d rows", len(table.Rows))
	}
	row := map[string]string{}
	for i, col := range table.ColumnDefinitions {
		if cell := table.Rows[0].Cells[i]; cell != nil { // a zero counter is omitted: kubectl prints <none>
			row[col.Name] = fmt.Sprint(cell)
		}
	}
	names := slices.Collect(func(yield func(string) bool) {
		for _, c := range table.ColumnDefinitions {
			if c.Priority == 0 && !yield(c.Name) {
				return
			}
		}
	})
	if !slices.Contains(names, "Soaking") || !slices.Contains(names, "Reverted") {
		t.Fatalf("default columns %v lack Soaking or Reverted", names)
	}
	return row
}
