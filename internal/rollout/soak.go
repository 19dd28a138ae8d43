package rollout

import (
	"fmt"
	"time"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// InformAction is what an inform does to the device's active task in the
// campaign of the informed module.
type InformAction int

const (
	NoChange     InformAction = iota
	Succeed                   // the target, no soak: SUCCEEDED
	StartSoak                 // the target, with a soak: SOAKING from now
	Revert                    // another version during the soak: FAILED, Reverted
	WrongVersion              // mid-upgrade, neither the old version nor the target
	Reconnected               // pushed, and back on its old version: it missed the push
)

// Inform decides what a device's report of version does to its active
// task. The target ends an upgrade (into the soak, when the campaign has
// one); a soaking device that reports anything else rolled back, whether
// to its old version or a third one, and a repeat of the target (devices
// inform on every connect) changes nothing.
func Inform(state otav1.TaskState, from, target, version string, soak time.Duration) InformAction {
	switch {
	case state == otav1.TaskSoaking && version == target:
		return NoChange
	case state == otav1.TaskSoaking:
		return Revert
	case version == target && soak > 0:
		return StartSoak
	case version == target:
		return Succeed
	case state.Started() && from != "" && version != from:
		return WrongVersion
	case state == otav1.TaskNotified:
		return Reconnected
	}
	return NoChange
}

// SoakOver reports whether a SOAKING task whose soak started at
// startMs (Unix milliseconds) has soaked long enough at nowMs.
func SoakOver(state otav1.TaskState, startMs int64, soak time.Duration, nowMs int64) bool {
	return state == otav1.TaskSoaking && nowMs-startMs >= soak.Milliseconds()
}

// RevertMessage is the message of a Reverted task.
func RevertMessage(version string, startMs, nowMs int64) string {
	after := (time.Duration(nowMs-startMs) * time.Millisecond).Round(time.Second)
	return fmt.Sprintf("reported %s %s into the soak", version, after)
}

// RevertAbortReason returns why reverts abort a campaign, or "": reverted >
// maxRevertedPercent% of the devices whose soak ended (succeeded or
// reverted), once minFinished devices finished. Devices still soaking are
// not judged yet.
func RevertAbortReason(c otav1.TaskCounts, p *otav1.AbortPolicy) string {
	if p == nil || p.MaxRevertedPercent == nil || c.Reverted == 0 {
		return ""
	}
	finished := c.Succeeded + c.Failed + c.TimedOut + c.Reverted
	if finished < int64(p.MinFinished) {
		return ""
	}
	judged := c.Succeeded + c.Reverted
	pct := int64(*p.MaxRevertedPercent)
	if c.Reverted*100 <= pct*judged {
		return ""
	}
	return fmt.Sprintf("%d of %d devices whose soak ended reverted, more than the %d%% allowed", c.Reverted, judged, pct)
}
