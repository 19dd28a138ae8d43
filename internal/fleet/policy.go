package fleet

import (
	"fmt"
	"time"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// waveStat counts one wave's tasks.
type waveStat struct {
	active, succeeded, finished int64
}

// abortReason returns why a campaign must abort, or "" when it may go on:
// failed > max(maxFailed, maxFailedPercent% of finished) once at least
// minFinished devices finished. Timeouts count as failures.
func abortReason(c otav1.TaskCounts, p *otav1.AbortPolicy) string {
	finished := c.Succeeded + c.Failed + c.TimedOut
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

// waveHold returns why the campaign may not start the wave after the
// current one yet, or "" when it may (once the current wave is done).
func waveHold(c *campaign, now time.Time) string {
	w := c.currentWave
	wave := c.spec.Waves[w-1]
	st := c.waveStats[w-1]
	if st.active > 0 {
		return "" // not done yet: nothing holds it, it is still running
	}
	promoted := c.spec.PromotedWaves >= w
	if wave.SuccessThreshold > 0 && st.finished > 0 && !promoted &&
		st.succeeded*100 < int64(wave.SuccessThreshold)*st.finished {
		return fmt.Sprintf("wave %d: %d of %d devices succeeded, below the %d%% threshold; promote to go on",
			w, st.succeeded, st.finished, wave.SuccessThreshold)
	}
	if wave.Pause == nil || promoted {
		return ""
	}
	if wave.Pause.Duration == nil {
		return fmt.Sprintf("paused after wave %d until promoted", w)
	}
	if c.pausedUntil.IsZero() {
		c.pausedUntil = now.Add(wave.Pause.Duration.Duration)
	}
	if now.Before(c.pausedUntil) {
		return fmt.Sprintf("paused after wave %d until %s", w, c.pausedUntil.UTC().Format(time.RFC3339))
	}
	return ""
}
