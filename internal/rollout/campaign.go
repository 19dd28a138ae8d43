package rollout

import (
	"fmt"
	"time"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// Stage is where a campaign is in its life. It replaces a set of flags
// (selected, selection written, released) whose combinations were not all
// possible; a campaign only moves forward through the stages.
type Stage int

const (
	// Waiting: no selection yet (before the schedule's start, or a
	// campaign rebuilt from its slices that has not been told its spec).
	Waiting Stage = iota
	// Selected: devices were selected in this process; some of the
	// slices recording them may not be written yet.
	Selected
	// Recorded: every slice of the selection is written, so a restart
	// does not select again.
	Recorded
	// Released: a finished batch dropped its tasks; only its counters and
	// reasons remain (the UpgradeSlices keep the record).
	Released
)

func (s Stage) String() string {
	return [...]string{"Waiting", "Selected", "Recorded", "Released"}[s]
}

// HasSelected reports whether the campaign has made its selection.
func (s Stage) HasSelected() bool { return s >= Selected }

// AbortReason returns why a campaign must abort, or "" when it may go on:
// failed > max(maxFailed, maxFailedPercent% of finished) once at least
// minFinished devices finished, or too many reverts (RevertAbortReason).
// Timeouts count as failures; reverts are finished, not failures.
func AbortReason(c otav1.TaskCounts, p *otav1.AbortPolicy) string {
	if p == nil {
		return ""
	}
	if msg := RevertAbortReason(c, p); msg != "" {
		return msg
	}
	finished := c.Succeeded + c.Failed + c.TimedOut + c.Reverted
	if finished < int64(p.MinFinished) || finished == 0 {
		return ""
	}
	failed := c.Failed + c.TimedOut
	limit := max(int64(p.MaxFailed), int64(p.MaxFailedPercent)*finished/100)
	if failed <= limit {
		return ""
	}
	return fmt.Sprintf("%d of %d finished devices failed, more than the %d allowed", failed, finished, limit)
}

// WaveStat counts one wave's tasks. Soaking tasks are not in Active: the
// wave has pushed them, and only the soak gate waits for them.
type WaveStat struct {
	Active, Soaking, Succeeded, Finished int64
	// SoakEnds is when the last soak of the wave ends.
	SoakEnds time.Time
}

// Gate is the decision on the wave after the current one.
type Gate struct {
	// Held says why the next wave may not start; "" when it may (once the
	// current wave has no active task).
	Held string
	// By names the gate that holds it.
	By otav1.WaveGateType
	// PausedUntil is when a timed pause after the wave ends; it is set the
	// first time the wave is found done, and kept by the caller.
	PausedUntil time.Time
}

// WaveGate decides whether the wave after wave n (1-based) may start. A
// wave still running holds nothing; then its gates in order: devices still
// soaking hold it (its success is not known before their soak ends), a
// wave below its success threshold holds until promoted, and a pause holds
// until promoted or, when timed, until it ends. pausedUntil is what the
// last call returned. Promoting a wave opens all of its gates.
func WaveGate(n int32, wave otav1.Wave, st WaveStat, promoted bool, pausedUntil, now time.Time) Gate {
	g := Gate{PausedUntil: pausedUntil}
	if st.Active > 0 || promoted {
		return g
	}
	if st.Soaking > 0 {
		g.Held, g.By = fmt.Sprintf("wave %d: %d devices soaking until %s; %d of %d soaked devices succeeded so far",
			n, st.Soaking, st.SoakEnds.UTC().Format(time.RFC3339), st.Succeeded, st.Finished), otav1.GateSoak
		return g
	}
	if wave.SuccessThreshold > 0 && st.Finished > 0 &&
		st.Succeeded*100 < int64(wave.SuccessThreshold)*st.Finished {
		g.Held = fmt.Sprintf("wave %d: %d of %d devices succeeded, below the %d%% threshold; promote to go on",
			n, st.Succeeded, st.Finished, wave.SuccessThreshold)
		g.By = otav1.GateSuccessThreshold
		return g
	}
	if wave.Pause == nil {
		return g
	}
	g.By = otav1.GatePause
	if wave.Pause.Duration == nil {
		g.Held = fmt.Sprintf("paused after wave %d until promoted", n)
		return g
	}
	if g.PausedUntil.IsZero() {
		g.PausedUntil = now.Add(wave.Pause.Duration.Duration)
	}
	if now.Before(g.PausedUntil) {
		g.Held = fmt.Sprintf("paused after wave %d until %s", n, g.PausedUntil.UTC().Format(time.RFC3339))
	} else {
		g.By = ""
	}
	return g
}

// Snapshot is what a campaign's phase and next check depend on.
type Snapshot struct {
	Stage     Stage
	Aborted   bool
	Canceled  bool
	Paused    bool
	Dynamic   bool
	WaveHeld  bool
	WaveGate  otav1.WaveGateType // the gate that holds the wave
	Active    int64              // tasks not final
	Start     time.Time
	End       time.Time
	PausedTil time.Time
	// Window is where the campaign stands against its maintenance
	// windows; its change is a next check.
	Window WindowState
}

// Over reports whether the campaign accepts no new work.
func (s Snapshot) Over(now time.Time) bool {
	return s.Canceled || s.Aborted || (!s.End.IsZero() && !now.Before(s.End))
}

// Phase is the campaign's phase at now.
func Phase(s Snapshot, now time.Time) otav1.BatchPhase {
	switch {
	case s.Aborted:
		return otav1.BatchAborted
	case s.Canceled:
		return otav1.BatchCanceled
	case !s.Stage.HasSelected() || now.Before(s.Start):
		return otav1.BatchPlanned
	case s.Active == 0 && (!s.Dynamic || s.Over(now)):
		return otav1.BatchCompleted
	case s.Paused || (s.WaveHeld && s.WaveGate != otav1.GateSoak):
		// A wave held for its soak is not paused: the soak ends by itself,
		// nobody has to promote.
		return otav1.BatchPaused
	}
	return otav1.BatchRunning
}

// MaxCheck bounds the wait between two checks of a campaign that nothing
// else wakes.
const MaxCheck = time.Minute

// NextCheck is how long until the campaign's phase may change without a
// device message or a task of its own changing (the engine announces
// those): the schedule's start or end, a pause ending, or a maintenance
// window opening or closing. The reconciler requeues for it.
func NextCheck(s Snapshot, now time.Time) time.Duration {
	next := MaxCheck
	for _, t := range []time.Time{s.Start, s.End, s.PausedTil, s.Window.Until} {
		if d := t.Sub(now); d > 0 && d < next {
			next = d
		}
	}
	return next
}
