package plugin

import (
	"fmt"
	"io"
	"strings"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/duration"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/steer"
)

const barWidth = 30

// stateCount is one row of the progress view.
type stateCount struct {
	state otav1.TaskState
	n     int64
}

// stateReverted labels the reverted devices' row: they are FAILED with
// reason Reverted, counted apart from the other failures.
const stateReverted otav1.TaskState = "REVERTED"

// stateCounts lists the counters final states first, because those are
// what a rollout is judged by.
func stateCounts(c otav1.TaskCounts) []stateCount {
	return []stateCount{
		{otav1.TaskSucceeded, c.Succeeded},
		{otav1.TaskFailed, c.Failed},
		{stateReverted, c.Reverted},
		{otav1.TaskTimedOut, c.TimedOut},
		{otav1.TaskCanceled, c.Canceled},
		{otav1.TaskSoaking, c.Soaking},
		{otav1.TaskInProgress, c.InProgress},
		{otav1.TaskNotified, c.Notified},
		{otav1.TaskQueued, c.Queued},
		{otav1.TaskConfirm, c.Confirm},
	}
}

func finishedCount(c otav1.TaskCounts) int64 {
	return c.Succeeded + c.Failed + c.TimedOut + c.Canceled + c.Reverted
}

// bar draws n out of total as a fixed-width text bar.
func bar(n, total int64) string {
	filled := 0
	if total > 0 {
		filled = int(n * barWidth / total)
	}
	if n > 0 && filled == 0 {
		filled = 1 // a nonzero state must never look empty
	}
	filled = min(filled, barWidth)
	return "[" + strings.Repeat("#", filled) + strings.Repeat(".", barWidth-filled) + "]"
}

// eta estimates the time left from the average rate of finished devices
// since the start. It returns the rate (devices/s) and false when there is
// nothing to estimate from yet.
func eta(ub *otav1.UpgradeBatch, now time.Time) (rate float64, left time.Duration, ok bool) {
	if ub.Status.StartTime == nil {
		return 0, 0, false
	}
	end := now
	if ub.Status.CompletionTime != nil {
		end = ub.Status.CompletionTime.Time
	}
	elapsed := end.Sub(ub.Status.StartTime.Time).Seconds()
	done := finishedCount(ub.Status.Counts)
	if elapsed <= 0 || done == 0 {
		return 0, 0, false
	}
	rate = float64(done) / elapsed
	remaining := ub.Status.Counts.Total - done
	if remaining < 0 {
		remaining = 0
	}
	return rate, time.Duration(float64(remaining) / rate * float64(time.Second)), true
}

// renderBatch writes the human view of a batch. It is a pure function of
// the object and the clock so that tests can pin its output.
func renderBatch(w io.Writer, ub *otav1.UpgradeBatch, now time.Time) {
	s := ub.Status
	phase := string(s.Phase)
	if phase == "" {
		phase = "Pending (not reconciled yet)"
	}
	if ub.Spec.Paused && !steer.Finished(s.Phase) {
		phase += " (spec.paused)"
	}
	fmt.Fprintf(w, "Name:       %s\n", ub.Name)
	fmt.Fprintf(w, "Namespace:  %s\n", ub.Namespace)
	fmt.Fprintf(w, "Firmware:   %s\n", ub.Spec.Firmware)
	fmt.Fprintf(w, "Phase:      %s\n", phase)
	fmt.Fprintf(w, "Wave:       %s\n", waveLine(ub, now))
	if line := windowLine(s.Window, now); line != "" {
		fmt.Fprintf(w, "Window:     %s\n", line)
	}
	if s.StartTime != nil {
		fmt.Fprintf(w, "Started:    %s (%s ago)\n", s.StartTime.UTC().Format(time.RFC3339), duration.HumanDuration(now.Sub(s.StartTime.Time)))
	} else {
		fmt.Fprintf(w, "Started:    -\n")
	}
	if s.CompletionTime != nil {
		fmt.Fprintf(w, "Finished:   %s\n", s.CompletionTime.UTC().Format(time.RFC3339))
	}
	total, done := s.Counts.Total, finishedCount(s.Counts)
	progress := fmt.Sprintf("%d/%d finished", done, total)
	if total > 0 {
		progress += fmt.Sprintf(" (%d%%)", done*100/total)
	}
	if rate, left, ok := eta(ub, now); ok {
		progress += fmt.Sprintf(", %.1f devices/s", rate)
		if !steer.Finished(s.Phase) && left > 0 {
			progress += ", ETA " + duration.HumanDuration(left)
		}
	}
	fmt.Fprintf(w, "Progress:   %s\n\n", progress)
	for _, sc := range stateCounts(s.Counts) {
		pct := int64(0)
		if total > 0 {
			pct = sc.n * 100 / total
		}
		fmt.Fprintf(w, "  %-12s %s %7d %3d%%\n", sc.state, bar(sc.n, total), sc.n, pct)
	}
	if len(s.FailureReasons) > 0 {
		fmt.Fprintf(w, "\nFailures:\n")
		for _, r := range s.FailureReasons {
			line := fmt.Sprintf("  %-20s %7d", r.Reason, r.Count)
			if r.Example != "" {
				line += fmt.Sprintf("  e.g. %q", r.Example)
			}
			fmt.Fprintln(w, line)
		}
	}
	for _, t := range []string{otav1.ConditionStalled, otav1.ConditionReady} {
		if c := apimeta.FindStatusCondition(s.Conditions, t); c != nil && c.Message != "" && (t == otav1.ConditionStalled) == (c.Status == "True") {
			fmt.Fprintf(w, "\n%s\n", conditionLine(t, string(c.Status), c.Reason, c.Message))
		}
	}
}

// waveLine says where the rollout is, and what a paused wave waits for.
func waveLine(ub *otav1.UpgradeBatch, now time.Time) string {
	s := ub.Status
	if s.Waves == 0 {
		return "-"
	}
	line := fmt.Sprintf("%d/%d", s.CurrentWave, s.Waves)
	if steer.Finished(s.Phase) {
		return line
	}
	if s.PausedUntil != nil && s.PausedUntil.After(now) {
		return line + fmt.Sprintf(" (paused for %s)", duration.HumanDuration(s.PausedUntil.Sub(now)))
	}
	if g := s.WaveGate; g != nil && g.Gate == otav1.GateSoak {
		// A soak ends by itself: promoting would skip what it watches.
		return line + fmt.Sprintf(" (held by its Soak gate: %s)", g.Message)
	}
	if g := s.WaveGate; g != nil {
		return line + fmt.Sprintf(" (held by its %s gate: %s; kubectl ota promote %s)", g.Gate, g.Message, ub.Name)
	}
	if c := apimeta.FindStatusCondition(s.Conditions, otav1.ConditionReconciling); c != nil && c.Reason == otav1.ReasonWavePaused {
		// The engine's message says whether a promote or a better success
		// rate is awaited; the hint saves looking up the verb.
		return line + fmt.Sprintf(" (held: %s; kubectl ota promote %s)", c.Message, ub.Name)
	}
	return line
}

// windowLine says where a batch stands against its maintenance windows,
// "" for a batch without any.
func windowLine(w *otav1.WindowStatus, now time.Time) string {
	switch {
	case w == nil:
		return ""
	case w.Open && w.ClosesAt != nil:
		return fmt.Sprintf("open, closes %s (in %s)", w.ClosesAt.UTC().Format(time.RFC3339), duration.HumanDuration(w.ClosesAt.Sub(now)))
	case w.Open:
		return "open"
	case w.NextOpen != nil:
		return fmt.Sprintf("closed, opens %s (in %s)", w.NextOpen.UTC().Format(time.RFC3339), duration.HumanDuration(w.NextOpen.Sub(now)))
	}
	return "closed, and no window opens again"
}
