package controllers

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

func ready(status metav1.ConditionStatus, reason, msg string) []metav1.Condition {
	return []metav1.Condition{{Type: otav1.ConditionReady, Status: status, Reason: reason, Message: msg}}
}

// TestAnnounceBatch: one Event per transition, none when nothing changed.
func TestAnnounceBatch(t *testing.T) {
	running := otav1.UpgradeBatchStatus{Phase: otav1.BatchRunning, CurrentWave: 1, Waves: 2,
		Conditions: ready(metav1.ConditionFalse, otav1.ReasonProgressing, "wave 1 of 2")}
	held := running
	held.Phase, held.Conditions = otav1.BatchPaused, ready(metav1.ConditionFalse, otav1.ReasonWavePaused, "paused after wave 1")
	soaking := running
	soaking.WaveGate = &otav1.WaveGateStatus{Gate: otav1.GateSoak, Wave: 1, Message: "wave 1: 2 devices soaking"}
	soaking.Conditions = ready(metav1.ConditionFalse, otav1.ReasonSoaking, "wave 1: 2 devices soaking")
	belowThreshold := held
	belowThreshold.WaveGate = &otav1.WaveGateStatus{Gate: otav1.GateSuccessThreshold, Wave: 1}
	wave2 := running
	wave2.CurrentWave = 2
	done := wave2
	done.Phase, done.Counts = otav1.BatchCompleted, otav1.TaskCounts{Total: 4, Succeeded: 4}
	done.Conditions = ready(metav1.ConditionTrue, otav1.ReasonSucceeded, "4 of 4 devices upgraded")
	aborted := running
	aborted.Phase, aborted.Conditions = otav1.BatchAborted, ready(metav1.ConditionFalse, otav1.ReasonAborted, "3 failed")
	canceled := running
	canceled.Phase = otav1.BatchCanceled
	missed := otav1.UpgradeBatchStatus{Phase: otav1.BatchCompleted,
		Conditions: ready(metav1.ConditionFalse, otav1.ReasonScheduleEnded, "schedule.end passed")}

	cases := []struct {
		name string
		o, n otav1.UpgradeBatchStatus
		want []string
	}{
		{"first wave", otav1.UpgradeBatchStatus{Phase: otav1.BatchPlanned}, running, []string{"Normal WaveStarted Wave 1 of 2 started"}},
		{"no change", running, running, nil},
		{"held", running, held, []string{"Normal WaveHeld paused after wave 1"}},
		{"still held", held, held, nil},
		{"held by the soak", running, soaking, []string{"Normal WaveHeld wave 1: 2 devices soaking"}},
		{"still soaking", soaking, soaking, nil},
		{"soaked, then below the threshold", soaking, belowThreshold, []string{"Normal WaveHeld paused after wave 1"}},
		{"second wave", held, wave2, []string{"Normal WaveStarted Wave 2 of 2 started"}},
		{"completed", wave2, done, []string{"Normal Completed Succeeded: 4 of 4 devices upgraded"}},
		{"aborted", running, aborted, []string{"Warning Aborted Aborted: 3 failed"}},
		{"canceled", running, canceled, []string{"Normal Canceled Canceled: 0 of 0 devices upgraded"}},
		{"schedule missed", otav1.UpgradeBatchStatus{}, missed, []string{"Warning ScheduleEnded ScheduleEnded: schedule.end passed"}},
	}
	for _, tc := range cases {
		rec := events.NewFakeRecorder(10)
		announceBatch(rec, &otav1.UpgradeBatch{}, tc.o, tc.n)
		close(rec.Events)
		var got []string
		for e := range rec.Events {
			got = append(got, e)
		}
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%s: events %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestMissedSchedule(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	past, future := metav1.NewTime(now.Add(-time.Hour)), metav1.NewTime(now.Add(time.Hour))
	started := metav1.NewTime(now.Add(-2 * time.Hour))
	batch := func(end *metav1.Time, st otav1.UpgradeBatchStatus) *otav1.UpgradeBatch {
		ub := &otav1.UpgradeBatch{Spec: otav1.UpgradeBatchSpec{Schedule: &otav1.Schedule{End: end}}, Status: st}
		return ub
	}
	cases := []struct {
		name   string
		ub     *otav1.UpgradeBatch
		missed bool
	}{
		{"end passed, new batch", batch(&past, otav1.UpgradeBatchStatus{}), true},
		{"end passed, planned", batch(&past, otav1.UpgradeBatchStatus{Phase: otav1.BatchPlanned}), true},
		{"end ahead", batch(&future, otav1.UpgradeBatchStatus{}), false},
		{"no end", batch(nil, otav1.UpgradeBatchStatus{}), false},
		{"no schedule", &otav1.UpgradeBatch{}, false},
		{"end passed after the start: the engine ends it", batch(&past, otav1.UpgradeBatchStatus{Phase: otav1.BatchRunning, StartTime: &started}), false},
		{"end passed after selection", batch(&past, otav1.UpgradeBatchStatus{Phase: otav1.BatchRunning, SelectionComplete: true}), false},
	}
	for _, tc := range cases {
		msg := missedSchedule(tc.ub, now)
		if (msg != "") != tc.missed {
			t.Errorf("%s: %q", tc.name, msg)
		}
	}
	ub := batch(&past, otav1.UpgradeBatchStatus{})
	setScheduleEnded(ub, missedSchedule(ub, now), now)
	r := readyOf(ub.Status)
	if ub.Status.Phase != otav1.BatchCompleted || r.Status != metav1.ConditionFalse || r.Reason != otav1.ReasonScheduleEnded ||
		!strings.Contains(r.Message, past.UTC().Format(time.RFC3339)) || ub.Status.CompletionTime == nil {
		t.Fatalf("status %+v", ub.Status)
	}
	if missedSchedule(ub, now) == "" {
		t.Fatal("an ended batch must stay ended on the next reconcile")
	}
	ub.Spec.Schedule.End = &future
	if missedSchedule(ub, now) != "" {
		t.Fatal("a later end must give the batch another chance")
	}
	clearScheduleEnded(ub)
	if ub.Status.CompletionTime != nil {
		t.Fatal("a revived batch keeps the completion time of its missed schedule")
	}
}
