package rollout

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

func TestAbortReason(t *testing.T) {
	p := &otav1.AbortPolicy{MinFinished: 10, MaxFailedPercent: 20}
	cases := []struct {
		name   string
		counts otav1.TaskCounts
		p      *otav1.AbortPolicy
		abort  bool
	}{
		{"no policy", otav1.TaskCounts{Failed: 100}, nil, false},
		{"too few finished to judge", otav1.TaskCounts{Succeeded: 2, Failed: 7}, p, false},
		{"at the limit", otav1.TaskCounts{Succeeded: 8, Failed: 2}, p, false},
		{"over the limit", otav1.TaskCounts{Succeeded: 7, Failed: 3}, p, true},
		{"timeouts count as failures", otav1.TaskCounts{Succeeded: 7, Failed: 1, TimedOut: 2}, p, true},
		{"canceled tasks are not failures", otav1.TaskCounts{Succeeded: 8, Failed: 2, Canceled: 50}, p, false},
		{"absolute limit above the percentage", otav1.TaskCounts{Succeeded: 10, Failed: 5},
			&otav1.AbortPolicy{MaxFailed: 5, MaxFailedPercent: 10}, false},
		{"nothing finished", otav1.TaskCounts{}, &otav1.AbortPolicy{}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := AbortReason(c.counts, c.p); (got != "") != c.abort {
				t.Errorf("AbortReason = %q, want abort %v", got, c.abort)
			}
		})
	}
}

func TestWaveGate(t *testing.T) {
	pause := func(d time.Duration) *otav1.WavePause {
		return &otav1.WavePause{Duration: &metav1.Duration{Duration: d}}
	}
	done := WaveStat{Succeeded: 9, Finished: 10}
	soaking := WaveStat{Soaking: 3, Succeeded: 1, Finished: 1, SoakEnds: t0.Add(10 * time.Minute)}
	gates := map[string]otav1.WaveGateType{"below the success threshold": otav1.GateSuccessThreshold,
		"paused until promoted": otav1.GatePause, "timed pause starts when the wave is done": otav1.GatePause,
		"devices soaking hold it": otav1.GateSoak, "soaking holds before the threshold is judged": otav1.GateSoak}
	cases := []struct {
		name        string
		wave        otav1.Wave
		st          WaveStat
		promoted    bool
		pausedUntil time.Time
		now         time.Time
		held        string // a part of the message, "" for not held
		until       time.Time
	}{
		{"still running: nothing holds it", otav1.Wave{Pause: &otav1.WavePause{}}, WaveStat{Active: 1}, false, time.Time{}, t0, "", time.Time{}},
		{"done, no pause", otav1.Wave{}, done, false, time.Time{}, t0, "", time.Time{}},
		{"below the success threshold", otav1.Wave{SuccessThreshold: 95}, done, false, time.Time{}, t0, "below the 95% threshold", time.Time{}},
		{"below the threshold, promoted", otav1.Wave{SuccessThreshold: 95}, done, true, time.Time{}, t0, "", time.Time{}},
		{"at the threshold", otav1.Wave{SuccessThreshold: 90}, done, false, time.Time{}, t0, "", time.Time{}},
		{"paused until promoted", otav1.Wave{Pause: &otav1.WavePause{}}, done, false, time.Time{}, t0, "until promoted", time.Time{}},
		{"pause until promoted, promoted", otav1.Wave{Pause: &otav1.WavePause{}}, done, true, time.Time{}, t0, "", time.Time{}},
		{"timed pause starts when the wave is done", otav1.Wave{Pause: pause(time.Hour)}, done, false, time.Time{}, t0,
			"until 2026-12-02T04:00:00Z", t0.Add(time.Hour)},
		{"timed pause, a minute before its end", otav1.Wave{Pause: pause(time.Hour)}, done, false, t0.Add(time.Hour), t0.Add(59 * time.Minute),
			"paused after wave 2", t0.Add(time.Hour)},
		{"timed pause over", otav1.Wave{Pause: pause(time.Hour)}, done, false, t0.Add(time.Hour), t0.Add(time.Hour), "", t0.Add(time.Hour)},
		{"devices soaking hold it", otav1.Wave{}, soaking, false, time.Time{}, t0, "wave 2: 3 devices soaking until 2026-12-02T03:10:00Z", time.Time{}},
		{"soaking holds before the threshold is judged", otav1.Wave{SuccessThreshold: 95}, soaking, false, time.Time{}, t0, "3 devices soaking", time.Time{}},
		{"soaking, promoted", otav1.Wave{}, soaking, true, time.Time{}, t0, "", time.Time{}},
		{"soaking but still pushing: running", otav1.Wave{}, WaveStat{Active: 1, Soaking: 3}, false, time.Time{}, t0, "", time.Time{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := WaveGate(2, c.wave, c.st, c.promoted, c.pausedUntil, c.now)
			if (g.Held == "") != (c.held == "") || !strings.Contains(g.Held, c.held) {
				t.Errorf("held = %q, want %q", g.Held, c.held)
			}
			if !g.PausedUntil.Equal(c.until) {
				t.Errorf("pausedUntil = %s, want %s", g.PausedUntil, c.until)
			}
			if want, ok := gates[c.name]; ok && g.By != want {
				t.Errorf("gate = %q, want %q", g.By, want)
			}
			if c.held == "" && g.By != "" {
				t.Errorf("gate = %q for a wave not held", g.By)
			}
		})
	}
}

func TestPhase(t *testing.T) {
	running := Snapshot{Stage: Recorded, Active: 5}
	with := func(f func(*Snapshot)) Snapshot { s := running; f(&s); return s }
	cases := []struct {
		name string
		s    Snapshot
		now  time.Time
		want otav1.BatchPhase
	}{
		{"running", running, t0, otav1.BatchRunning},
		{"selected, not yet recorded", with(func(s *Snapshot) { s.Stage = Selected }), t0, otav1.BatchRunning},
		{"nothing selected yet", with(func(s *Snapshot) { s.Stage = Waiting }), t0, otav1.BatchPlanned},
		{"before its start", with(func(s *Snapshot) { s.Start = t0.Add(time.Minute) }), t0, otav1.BatchPlanned},
		{"at its start", with(func(s *Snapshot) { s.Start = t0 }), t0, otav1.BatchRunning},
		{"nothing active: completed", with(func(s *Snapshot) { s.Active = 0 }), t0, otav1.BatchCompleted},
		{"released", with(func(s *Snapshot) { s.Stage, s.Active = Released, 0 }), t0, otav1.BatchCompleted},
		{"dynamic keeps running while idle", with(func(s *Snapshot) { s.Active, s.Dynamic = 0, true }), t0, otav1.BatchRunning},
		{"dynamic completes at its end", with(func(s *Snapshot) { s.Active, s.Dynamic, s.End = 0, true, t0 }), t0, otav1.BatchCompleted},
		{"dynamic with work at its end runs on", with(func(s *Snapshot) { s.Dynamic, s.End = true, t0 }), t0, otav1.BatchRunning},
		{"paused", with(func(s *Snapshot) { s.Paused = true }), t0, otav1.BatchPaused},
		{"held by a wave", with(func(s *Snapshot) { s.WaveHeld = true }), t0, otav1.BatchPaused},
		{"held by a wave's threshold", with(func(s *Snapshot) { s.WaveHeld, s.WaveGate = true, otav1.GateSuccessThreshold }), t0, otav1.BatchPaused},
		{"held by a wave's soak: running", with(func(s *Snapshot) { s.WaveHeld, s.WaveGate = true, otav1.GateSoak }), t0, otav1.BatchRunning},
		{"soaking and paused by spec", with(func(s *Snapshot) { s.WaveHeld, s.WaveGate, s.Paused = true, otav1.GateSoak, true }), t0, otav1.BatchPaused},
		{"canceled beats everything but an abort", with(func(s *Snapshot) { s.Canceled, s.Paused = true, true }), t0, otav1.BatchCanceled},
		{"aborted", with(func(s *Snapshot) { s.Aborted, s.Canceled = true, true }), t0, otav1.BatchAborted},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Phase(c.s, c.now); got != c.want {
				t.Errorf("Phase = %s, want %s", got, c.want)
			}
		})
	}
}

func TestNextCheck(t *testing.T) {
	cases := []struct {
		name string
		s    Snapshot
		want time.Duration
	}{
		{"nothing scheduled", Snapshot{}, MaxCheck},
		{"start soon", Snapshot{Start: t0.Add(10 * time.Second)}, 10 * time.Second},
		{"start passed, end soon", Snapshot{Start: t0.Add(-time.Hour), End: t0.Add(20 * time.Second)}, 20 * time.Second},
		{"pause ends first", Snapshot{End: t0.Add(time.Hour), PausedTil: t0.Add(5 * time.Second)}, 5 * time.Second},
		{"a window opens first", Snapshot{End: t0.Add(time.Hour), Window: WindowState{Until: t0.Add(7 * time.Second)}}, 7 * time.Second},
		{"far away: the periodic check", Snapshot{Start: t0.Add(time.Hour)}, MaxCheck},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := NextCheck(c.s, t0); got != c.want {
				t.Errorf("NextCheck = %s, want %s", got, c.want)
			}
		})
	}
}

func TestSnapshotOver(t *testing.T) {
	if (Snapshot{}).Over(t0) || !(Snapshot{Canceled: true}).Over(t0) || !(Snapshot{Aborted: true}).Over(t0) ||
		!(Snapshot{End: t0}).Over(t0) || (Snapshot{End: t0.Add(time.Second)}).Over(t0) {
		t.Fatal("Over: canceled, aborted or at its end, and nothing else")
	}
}
