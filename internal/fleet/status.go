package fleet

import (
	"errors"
	"slices"
	"time"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/rollout"
)

// Errors Upsert returns while a campaign cannot be taken yet.
var (
	ErrNotReady       = errors.New("the rollout engine is still loading the fleet state")
	ErrUnknownProduct = errors.New("the product is not registered with the rollout engine")
	// ErrNotOwned: another replica owns the product (internal/shard).
	ErrNotOwned = errors.New("the product is owned by another replica")
)

// maxReasons bounds the failure reasons reported in status.
const maxReasons = 16

// Status is a campaign's state as its reconciler writes it into status.
type Status struct {
	Phase       otav1.BatchPhase
	Counts      otav1.TaskCounts
	CurrentWave int32
	Waves       int32
	PausedUntil time.Time
	// Held says why no wave is being pushed, if so; Gate names the gate
	// that holds it, HeldWave the wave it holds after.
	Held     string
	Gate     otav1.WaveGateType
	HeldWave int32
	// Windows says the campaign has maintenance windows; Window is where
	// it stands against them.
	Windows bool
	Window  rollout.WindowState
	// Aborted says why the abort policy stopped the campaign, if it did.
	Aborted           string
	Reasons           []otav1.ReasonCount
	StartTime         time.Time
	CompletionTime    time.Time
	SelectionComplete bool
	Slices            int32
	// Devices lists each task, for campaigns of at most 10 devices.
	Devices []otav1.DeviceResult
	// UnknownDevices counts names of a List scope that the inventory did
	// not hold at selection; UnknownExamples names a few of them.
	UnknownDevices  int64
	UnknownExamples []string
	// NextCheck is when something may change without a device message (a
	// schedule start or end, a pause ending, a timeout): the reconciler
	// requeues for it.
	NextCheck time.Duration
}

func (e *Engine) status(c *campaign, now time.Time) Status {
	window := c.windowAt(now) // first: the next check depends on it
	s := Status{
		Phase:             phase(c, now),
		Counts:            c.counts,
		CurrentWave:       c.currentWave,
		Waves:             int32(max(len(c.spec.Waves), 1)),
		PausedUntil:       c.pausedUntil,
		Held:              c.waveHeld,
		Gate:              c.waveGate,
		HeldWave:          c.heldWave,
		Windows:           len(c.spec.Windows) > 0,
		Window:            window,
		UnknownDevices:    c.unknown,
		UnknownExamples:   c.unknownExamples,
		Aborted:           c.aborted,
		StartTime:         c.startTime,
		SelectionComplete: c.stage >= rollout.Recorded,
		Slices:            int32(max(len(c.slices), c.sliceCount)),
		NextCheck:         nextCheck(c, now),
	}
	if s.Phase == otav1.BatchCompleted || s.Phase == otav1.BatchCanceled || s.Phase == otav1.BatchAborted {
		if c.completionTime.IsZero() && c.active() == 0 {
			c.completionTime = now
		}
		s.CompletionTime = c.completionTime
	}
	for _, r := range c.reasons {
		if r.Count > 0 {
			s.Reasons = append(s.Reasons, *r)
		}
	}
	slices.SortFunc(s.Reasons, func(a, b otav1.ReasonCount) int {
		if a.Count != b.Count {
			return int(b.Count - a.Count)
		}
		return compareStrings(a.Reason, b.Reason)
	})
	if len(s.Reasons) > maxReasons {
		s.Reasons = s.Reasons[:maxReasons]
	}
	if len(c.tasks) <= 10 {
		s.Devices = deviceResults(c)
	}
	return s
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func phase(c *campaign, now time.Time) otav1.BatchPhase { return rollout.Phase(c.snapshot(), now) }

func nextCheck(c *campaign, now time.Time) time.Duration { return rollout.NextCheck(c.snapshot(), now) }

func deviceResults(c *campaign) []otav1.DeviceResult {
	out := make([]otav1.DeviceResult, 0, len(c.tasks))
	for _, s := range c.slices {
		for _, t := range s.tasks {
			out = append(out, otav1.DeviceResult{
				Name: t.dev.name, State: t.state, Step: t.step, FromVersion: t.from,
				Reason: t.reason, Message: truncate(t.message, 256),
			})
		}
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
