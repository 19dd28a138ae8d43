package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/lab"
)

// TestEventsOncePerTransition: `kubectl describe` shows one Event for each
// transition a person follows (verification passed, wave started or held,
// batch completed, aborted, canceled, schedule missed) and none per device.
// Events with the same text are merged by the recorder into a series, so
// each is counted with its series.
func TestEventsOncePerTransition(t *testing.T) {
	l, err := lab.Start(context.Background(), lab.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	s := newScene(t, l, "events")
	f := s.startFleet(devicesim.Config{Devices: 10})
	fw := s.firmware("2.0.0")

	vr := &otav1.VerificationRun{ObjectMeta: lab.ObjectMeta(s.ns, "try"),
		Spec: otav1.VerificationRunSpec{Firmware: fw, Devices: f.DeviceNames()[:2]}}
	if err := l.Client().Create(s.ctx, vr); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitRun(s.ctx, vr, waitLong); err != nil {
		t.Fatal(err)
	}
	// Held until promoted, so that the hold is a state the test can see
	// (a timed pause could pass between two reconciles).
	waves := s.batch("waves", fw, func(sp *otav1.UpgradeBatchSpec) {
		sp.Waves = []otav1.Wave{{Percent: 50, Pause: &otav1.WavePause{}}, {Percent: 100}}
	})
	past := metav1.NewTime(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	missed := s.batch("missed", fw, func(sp *otav1.UpgradeBatchSpec) { sp.Schedule = &otav1.Schedule{End: &past} })
	s.wait(waves, "the pause after wave 1", waitLong, func(b *otav1.UpgradeBatch) bool {
		return condition(b, otav1.ConditionReconciling).Reason == otav1.ReasonWavePaused
	})
	s.update(waves, func(sp *otav1.UpgradeBatchSpec) { sp.PromotedWaves = 1 })
	s.wait(waves, "the batch with waves to complete", waitLong, lab.Finished)
	s.wait(missed, "the batch that missed its schedule to end", waitLong, lab.Finished)
	if r := condition(missed, otav1.ConditionReady); r.Reason != otav1.ReasonScheduleEnded || !strings.Contains(r.Message, "2020-01-01T00:00:00Z") {
		t.Fatalf("missed batch: %s", s.describe(missed))
	}
	// Another version once the waves are done, so that no device is busy.
	canceled := s.batch("canceled", s.firmware("3.0.0"), func(sp *otav1.UpgradeBatchSpec) { sp.Paused = true })
	s.wait(canceled, "the paused batch to select the fleet", waitLong, func(b *otav1.UpgradeBatch) bool {
		return b.Status.Counts.Total == int64(len(f.DeviceNames()))
	})
	s.update(canceled, func(sp *otav1.UpgradeBatchSpec) { sp.Cancel = &otav1.CancelPolicy{} })
	s.wait(canceled, "the cancel", waitLong, lab.Finished)

	want := map[string]map[string]int{
		"VerificationRun/try":   {"VerificationSucceeded": 1},
		"UpgradeBatch/waves":    {"WaveStarted": 2, "WaveHeld": 1, "Completed": 1},
		"UpgradeBatch/canceled": {"Canceled": 1},
		"UpgradeBatch/missed":   {"ScheduleEnded": 1},
	}
	// Events are written asynchronously: wait until all arrived, then make
	// sure no second copy follows.
	var got map[string]map[string]int
	err = lab.Poll(s.ctx, waitLong, func() (bool, error) {
		got, err = countEvents(s.ctx, l.Client(), s.ns)
		return err == nil && covers(got, want), err
	})
	if err != nil {
		t.Fatalf("events %v, want %v: %v", got, want, err)
	}
	s.holds(3*time.Second, "events stay one per transition", func() error {
		got, err := countEvents(s.ctx, l.Client(), s.ns)
		if err != nil {
			return err
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("events %v, want exactly %v", got, want)
		}
		return nil
	})
}

// countEvents counts the namespace's Events by object and reason.
func countEvents(ctx context.Context, c client.Client, ns string) (map[string]map[string]int, error) {
	var list eventsv1.EventList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	got := map[string]map[string]int{}
	for _, e := range list.Items {
		obj := e.Regarding.Kind + "/" + e.Regarding.Name
		if e.Regarding.Kind == "Product" || e.Regarding.Kind == "Firmware" {
			continue // not what this test is about
		}
		if got[obj] == nil {
			got[obj] = map[string]int{}
		}
		n := 1
		if e.Series != nil {
			n = int(e.Series.Count)
		}
		got[obj][e.Reason] += n
	}
	return got, nil
}

// covers reports whether every wanted event has arrived at least once.
func covers(got, want map[string]map[string]int) bool {
	for obj, reasons := range want {
		for reason, n := range reasons {
			if got[obj][reason] < n {
				return false
			}
		}
	}
	return true
}
