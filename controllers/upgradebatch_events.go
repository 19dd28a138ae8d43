package controllers

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// Event reasons of UpgradeBatches: one per transition a person follows in
// `kubectl describe` or an alerting pipeline, never one per device.
const (
	EventWaveStarted   = "WaveStarted"
	EventWaveHeld      = "WaveHeld"
	EventCompleted     = "Completed"
	EventAborted       = "Aborted"
	EventCanceled      = "Canceled"
	EventScheduleEnded = otav1.ReasonScheduleEnded
)

// announceBatch records Events for the transitions between two statuses.
// It is called only after the new status was written, so that a patch that
// lost a conflict, and the reconcile that repeats it from a stale cache,
// cannot announce the same transition twice.
func announceBatch(rec events.EventRecorder, ub *otav1.UpgradeBatch, o, n otav1.UpgradeBatchStatus) {
	if rec == nil {
		return
	}
	if n.CurrentWave > o.CurrentWave && n.Waves > 1 {
		rec.Eventf(ub, nil, corev1.EventTypeNormal, EventWaveStarted, "Rollout", "Wave %d of %d started", n.CurrentWave, n.Waves)
	}
	if held := heldBy(n); held != "" && held != heldBy(o) {
		rec.Eventf(ub, nil, corev1.EventTypeNormal, EventWaveHeld, "Rollout", "%s", readyOf(n).Message)
	}
	if n.Phase == o.Phase {
		return
	}
	ready := readyOf(n)
	switch n.Phase {
	case otav1.BatchCompleted:
		typ, reason := corev1.EventTypeNormal, EventCompleted
		if ready.Status != metav1.ConditionTrue {
			typ = corev1.EventTypeWarning
		}
		if ready.Reason == otav1.ReasonScheduleEnded {
			reason = EventScheduleEnded
		}
		rec.Eventf(ub, nil, typ, reason, "Rollout", "%s: %s", ready.Reason, ready.Message)
	case otav1.BatchAborted:
		rec.Eventf(ub, nil, corev1.EventTypeWarning, EventAborted, "Rollout", "Aborted: %s", ready.Message)
	case otav1.BatchCanceled:
		rec.Eventf(ub, nil, corev1.EventTypeNormal, EventCanceled, "Rollout", "Canceled: %d of %d devices upgraded",
			n.Counts.Succeeded, n.Counts.Total)
	}
}

// heldBy names what holds a batch's next wave, "" when nothing does: a new
// gate (the soak, then the success threshold, of the same wave) is a
// transition of its own.
func heldBy(st otav1.UpgradeBatchStatus) string {
	if g := st.WaveGate; g != nil {
		return fmt.Sprintf("%s/%d", g.Gate, g.Wave)
	}
	if readyOf(st).Reason == otav1.ReasonWavePaused {
		return otav1.ReasonWavePaused
	}
	return ""
}

func readyOf(st otav1.UpgradeBatchStatus) metav1.Condition {
	if c := findCondition(st.Conditions, otav1.ConditionReady); c != nil {
		return *c
	}
	return metav1.Condition{}
}

func findCondition(conds []metav1.Condition, typ string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}

// missedSchedule says why a batch is over before it began: its
// schedule.end passed while it was still waiting to select devices. The
// engine selects nothing for a batch whose end has passed and would keep it
// Planned forever; CEL cannot compare with the clock, so the check is here.
// A batch that already started is left to the engine, which cancels the
// tasks not pushed yet when the end comes.
func missedSchedule(ub *otav1.UpgradeBatch, now time.Time) string {
	sch, st := ub.Spec.Schedule, ub.Status
	if sch == nil || sch.End == nil || now.Before(sch.End.Time) {
		return ""
	}
	if st.StartTime != nil || st.SelectionComplete || (st.Phase != "" && st.Phase != otav1.BatchPlanned &&
		readyOf(st).Reason != otav1.ReasonScheduleEnded) {
		return ""
	}
	return fmt.Sprintf("schedule.end (%s) passed before the batch started, so no device was selected; "+
		"set a later schedule.end to run it", sch.End.UTC().Format(time.RFC3339))
}

// setScheduleEnded ends a batch that missed its schedule: Completed, not
// Ready, with the reason in every condition.
func setScheduleEnded(ub *otav1.UpgradeBatch, msg string, now time.Time) {
	st, gen := &ub.Status, ub.Generation
	st.ObservedGeneration = gen
	st.Phase = otav1.BatchCompleted
	if st.CompletionTime == nil {
		st.CompletionTime = &metav1.Time{Time: now}
	}
	setCondition(&st.Conditions, gen, otav1.ConditionReady, false, otav1.ReasonScheduleEnded, msg)
	setCondition(&st.Conditions, gen, otav1.ConditionReconciling, false, otav1.ReasonScheduleEnded, msg)
	setCondition(&st.Conditions, gen, otav1.ConditionStalled, false, otav1.ReasonScheduleEnded, msg)
}

// clearScheduleEnded forgets the end of a batch that missed its schedule
// once a later schedule.end gives it another chance, so that the run that
// follows gets its own completion time.
func clearScheduleEnded(ub *otav1.UpgradeBatch) {
	if readyOf(ub.Status).Reason == otav1.ReasonScheduleEnded {
		ub.Status.CompletionTime = nil
	}
}
