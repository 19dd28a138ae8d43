package rollout

import (
	"hash/fnv"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// Reasons a strict (verification) campaign records for devices it cannot
// run on, and reasons of tasks the engine ends itself.
const (
	ReasonNotFound        = "DeviceNotFound"
	ReasonNotReported     = "ModuleNotReported"
	ReasonAlreadyOnTarget = "AlreadyOnTarget"
	ReasonOverwritten     = "Overwritten"
	ReasonCanceled        = "Canceled"
	ReasonScheduleEnded   = "ScheduleEnded"
	ReasonAborted         = "Aborted"
)

// Candidate is what selection knows of one device for one campaign.
type Candidate struct {
	// InScope: the campaign's list and gray percentage include the device.
	InScope bool
	// Version is the device's version of the campaign's module; Reported
	// is false when the device never reported the module.
	Version  string
	Reported bool
	Target   string
	// Sources are the versions the campaign upgrades from; empty is any.
	Sources map[string]bool
	// Strict campaigns (verification runs) fail the devices they cannot
	// run on instead of skipping them.
	Strict bool
	// Holder is the state of the device's active task in another
	// campaign, "" when the device is free.
	Holder    otav1.TaskState
	Overwrite bool
}

// Verdict is what selection does with a device.
type Verdict int

const (
	Skip     Verdict = iota // leave the device out, record nothing
	Take                    // create a task for the device
	TakeOver                // cancel the holder's task, then take the device
	FailTask                // record a failed task with Reason
)

// Selection is the verdict and, for FailTask, why.
type Selection struct {
	Verdict Verdict
	Reason  string
}

// Select decides whether a campaign takes a device. Batches skip devices
// they cannot run on; strict campaigns record them as failed, so that a
// verification on a device that is not what it should be fails loudly. A
// device held by another campaign is Busy unless the campaign overwrites a
// task that has not reached the device yet.
func Select(c Candidate) Selection {
	switch {
	case !c.InScope:
		return Selection{Verdict: Skip}
	case !c.Reported:
		return strict(c, ReasonNotReported)
	case c.Version == c.Target:
		return strict(c, ReasonAlreadyOnTarget)
	case len(c.Sources) > 0 && !c.Sources[c.Version]:
		return strict(c, otav1.FailureWrongVersion)
	case c.Holder == "":
		return Selection{Verdict: Take}
	case c.Overwrite && !c.Holder.Started():
		return Selection{Verdict: TakeOver}
	}
	return Selection{Verdict: FailTask, Reason: otav1.FailureBusy}
}

func strict(c Candidate, reason string) Selection {
	if c.Strict {
		return Selection{Verdict: FailTask, Reason: reason}
	}
	return Selection{Verdict: Skip}
}

// Reselectable: a dynamic campaign takes a device again that failed only
// because another campaign held it (the guide's multi-module scenario).
func Reselectable(dynamic bool, state otav1.TaskState, reason string) bool {
	return dynamic && state == otav1.TaskFailed && reason == otav1.FailureBusy
}

// GrayBucket places a device in one of 100 buckets by a stable hash, so a
// gray release picks the same devices every time and for every replica.
func GrayBucket(productKey, name string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(productKey))
	_, _ = h.Write([]byte{'/'})
	_, _ = h.Write([]byte(name))
	return h.Sum32() % 100
}

// InGray reports whether a gray release of percent includes a device; 0
// and 100 include every device.
func InGray(percent int32, productKey, name string) bool {
	return percent <= 0 || percent >= 100 || GrayBucket(productKey, name) < uint32(percent)
}

// WaveOf returns the 1-based wave of the i-th of n pending tasks, by the
// waves' cumulative percentages, in selection order.
func WaveOf(i, n int, waves []otav1.Wave) int32 {
	w := 0
	for w < len(waves)-1 && i >= WaveEnd(n, waves[w].Percent) {
		w++
	}
	return int32(w + 1)
}

// WaveEnd is how many of n tasks the waves up to one of percent cover,
// rounded up: what every view of a wave's size must use.
func WaveEnd(n int, percent int32) int {
	return (n*int(percent) + 99) / 100
}
