package controllers

import (
	"errors"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/fleet"
)

// setWaiting records why the batch does not go on. The engine holds the
// batch meanwhile (campaignReconciler.steps): paused, or canceled for good
// when its Product is being deleted.
func (r *UpgradeBatchReconciler) setWaiting(ub *otav1.UpgradeBatch, err error) {
	st := &ub.Status
	st.ObservedGeneration = ub.Generation
	reason, stalled := otav1.ReasonProgressing, false
	var w *waitError
	if errors.As(err, &w) {
		reason, stalled = w.reason, w.stalled
	}
	switch {
	case w != nil && w.cancel:
		st.Phase = otav1.BatchCanceled
		if st.CompletionTime == nil {
			now := metav1.Now()
			st.CompletionTime = &now
		}
	case st.Phase == "":
		st.Phase = otav1.BatchPlanned
	}
	setHealth(&st.Conditions, ub.Generation, health{reconciling: !stalled, stalled: stalled, reason: reason, message: err.Error()})
}

func (r *UpgradeBatchReconciler) setStatus(ub *otav1.UpgradeBatch, s fleet.Status) {
	st := &ub.Status
	st.ObservedGeneration = ub.Generation
	st.Phase, st.Counts, st.CurrentWave, st.Waves = s.Phase, s.Counts, s.CurrentWave, s.Waves
	st.FailureReasons, st.Slices = s.Reasons, s.Slices
	// A static batch selects once; after a restart the engine's count is
	// gone, the status keeps it.
	st.UnknownDevices = max(st.UnknownDevices, s.UnknownDevices)
	st.SelectionComplete = st.SelectionComplete || s.SelectionComplete
	st.PausedUntil = timePtr(s.PausedUntil)
	st.WaveGate, st.Window = waveGate(s), windowStatus(s)
	if st.StartTime == nil {
		st.StartTime = timePtr(s.StartTime)
	}
	if st.CompletionTime == nil {
		st.CompletionTime = timePtr(s.CompletionTime)
	}
	gen := ub.Generation
	switch s.Phase {
	case otav1.BatchCompleted:
		reason, msg := completionMessage(ub, s.Counts)
		if ended, endMsg := scheduleEnded(ub, s); ended {
			// Not a success: the end cut the batch short.
			reason, msg = otav1.ReasonScheduleEnded, endMsg
		}
		if st.UnknownDevices > 0 {
			if reason == otav1.ReasonNothingSelected {
				reason = otav1.ReasonUnknownDevices
			}
			msg += unknownNote(st.UnknownDevices, s.UnknownExamples)
		}
		ok := reason == otav1.ReasonSucceeded
		setHealth(&st.Conditions, gen, health{ready: ok, stalled: !ok && reason != otav1.ReasonScheduleEnded, reason: reason, message: msg})
	case otav1.BatchAborted:
		setHealth(&st.Conditions, gen, health{stalled: true, reason: otav1.ReasonAborted, message: s.Aborted})
	case otav1.BatchCanceled:
		// Stalled, so that kstatus calls it Failed: a canceled batch never
		// completes, and a GitOps wait on it must not hang.
		setHealth(&st.Conditions, gen, health{stalled: true, reason: otav1.ReasonCanceled, message: "canceled"})
	default:
		reason, msg := progressMessage(s)
		setHealth(&st.Conditions, gen, health{reconciling: true, reason: reason, message: msg})
	}
}

// completionMessage says how a completed batch ended. A batch that
// upgraded no device did not succeed, whatever its phase: it selected
// nothing (and the user should learn why) or every device failed.
func completionMessage(ub *otav1.UpgradeBatch, c otav1.TaskCounts) (string, string) {
	switch {
	case c.Total == 0:
		return otav1.ReasonNothingSelected, "no device matched: " + selectionText(ub)
	case c.Succeeded == 0:
		return otav1.ReasonNoDeviceUpgraded, fmt.Sprintf("none of %d devices upgraded: %d failed, %d timed out, %d canceled, %d reverted",
			c.Total, c.Failed, c.TimedOut, c.Canceled, c.Reverted)
	}
	msg := fmt.Sprintf("%d of %d devices upgraded", c.Succeeded, c.Total)
	if c.Reverted > 0 {
		msg += fmt.Sprintf(", %d reverted during their soak", c.Reverted)
	}
	return otav1.ReasonSucceeded, msg
}

// unknownNote tells that a List scope named devices the product does not
// know: a batch skips them, and a user must not read "3 of 3" as all.
func unknownNote(n int64, examples []string) string {
	text := fmt.Sprintf("; %d listed devices are unknown to the product and were skipped", n)
	if len(examples) > 0 {
		text += " (" + strings.Join(examples, ", ") + ")"
	}
	return text
}

// selectionText describes what a batch selects, for a user wondering why
// nothing matched.
func selectionText(ub *otav1.UpgradeBatch) string {
	sc := ub.Spec.Scope
	text := "scope " + string(sc.Type)
	if sc.Type == otav1.ScopeGray {
		text += fmt.Sprintf(" %d%%", sc.GrayPercent)
	}
	if len(ub.Spec.SourceVersions) > 0 {
		text += ", source versions " + strings.Join(ub.Spec.SourceVersions, ", ")
	}
	return text + "; devices already on the target version, or that never reported the module, are not selected"
}

// scheduleEnded reports whether the schedule's end stopped the batch before
// every selected device was upgraded, and says so.
func scheduleEnded(ub *otav1.UpgradeBatch, s fleet.Status) (bool, string) {
	sch := ub.Spec.Schedule
	if sch == nil || sch.End == nil || time.Now().Before(sch.End.Time) || s.Counts.Succeeded == s.Counts.Total {
		return false, ""
	}
	return true, fmt.Sprintf("Schedule ended at %s: %d of %d devices upgraded, %d canceled by the end, %d failed",
		sch.End.UTC().Format(time.RFC3339), s.Counts.Succeeded, s.Counts.Total, s.Counts.Canceled,
		s.Counts.Failed+s.Counts.TimedOut)
}

func progressMessage(s fleet.Status) (string, string) {
	switch {
	case s.Phase == otav1.BatchPlanned:
		return otav1.ReasonScheduled, "waiting for the schedule's start"
	case s.Held != "" && s.Gate == otav1.GateSoak:
		// Not WavePaused: the soak ends by itself, nobody has to promote.
		return otav1.ReasonSoaking, s.Held
	case s.Held != "":
		return otav1.ReasonWavePaused, s.Held
	case s.Phase == otav1.BatchPaused:
		return otav1.ReasonPaused, "paused: no new pushes until spec.paused is false"
	}
	if msg := waitingForWindow(s); msg != "" {
		return otav1.ReasonOutsideWindow, msg
	}
	c := s.Counts
	finished := c.Succeeded + c.Failed + c.TimedOut + c.Canceled + c.Reverted
	if c.Soaking > 0 && c.Soaking == s.Counts.Total-finished {
		return otav1.ReasonSoaking, fmt.Sprintf("wave %d of %d: %d devices soaking, %d of %d finished (%d reverted)",
			s.CurrentWave, s.Waves, c.Soaking, finished, c.Total, c.Reverted)
	}
	return otav1.ReasonProgressing, fmt.Sprintf("wave %d of %d: %d of %d devices finished",
		s.CurrentWave, s.Waves, finished, s.Counts.Total)
}
