package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// progressView prints one line per change of a batch's status.
type progressView struct {
	w    io.Writer
	last string
	t0   time.Time
}

func newProgressView(w io.Writer) *progressView { return &progressView{w: w, t0: time.Now()} }

func (v *progressView) show(ub *otav1.UpgradeBatch) {
	line := render(ub)
	if line == v.last {
		return
	}
	v.last = line
	fmt.Fprintf(v.w, "%6.1fs %s\n", time.Since(v.t0).Seconds(), line)
}

func (v *progressView) done(ub *otav1.UpgradeBatch) { v.show(ub) }

func render(ub *otav1.UpgradeBatch) string {
	n := ub.Status.Counts
	total := max(n.Total, 1)
	const width = 30
	bar := func(k int64) int { return int(k * width / total) }
	s, f := bar(n.Succeeded), bar(n.Failed+n.TimedOut+n.Canceled)
	a := bar(n.Notified + n.InProgress)
	rest := max(width-s-f-a, 0)
	return fmt.Sprintf("%-9s %s [%s%s%s%s] %d ok  %d failed  %d upgrading  %d queued",
		phaseOf(ub), waveOf(ub),
		strings.Repeat("#", s), strings.Repeat("x", f), strings.Repeat(">", a), strings.Repeat(".", rest),
		n.Succeeded, n.Failed+n.TimedOut, n.Notified+n.InProgress, n.Queued+n.Confirm)
}

// phaseOf names a batch the controller has not reconciled yet Pending, as
// `kubectl ota status` does, rather than printing nothing.
func phaseOf(ub *otav1.UpgradeBatch) string {
	if ub.Status.Phase == "" {
		return "Pending"
	}
	return string(ub.Status.Phase)
}

// waveOf says which wave runs. Before the first wave starts there is none
// to count, so the line shows how many are planned ("wave -/3"), never a
// wave 0 or a wave count the spec does not have.
func waveOf(ub *otav1.UpgradeBatch) string {
	planned := int32(max(len(ub.Spec.Waves), 1))
	if ub.Status.Waves > 0 {
		planned = ub.Status.Waves
	}
	if ub.Status.CurrentWave == 0 {
		return fmt.Sprintf("wave -/%d", planned)
	}
	return fmt.Sprintf("wave %d/%d", ub.Status.CurrentWave, planned)
}
