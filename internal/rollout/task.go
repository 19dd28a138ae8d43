package rollout

import (
	"strconv"
	"time"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// Retry is a campaign's retry policy.
type Retry struct {
	Count    int32
	Interval time.Duration
	TimedOut bool // timeouts are retried too
}

// AfterFailure decides what a failure (to is FAILED or TIMED_OUT) of the
// attempt-th attempt becomes: a retry at the returned time, or the end of
// the task (zero time). A campaign that is over retries nothing.
func AfterFailure(to otav1.TaskState, attempt int32, p Retry, over bool, now time.Time) (retryAt time.Time) {
	retryable := to == otav1.TaskFailed || p.TimedOut
	if !retryable || attempt > p.Count || over {
		return time.Time{}
	}
	return now.Add(p.Interval)
}

// RetryMessage is the message a task keeps while it waits for its retry.
func RetryMessage(attempt int32, reason, msg string) string {
	text := reason
	if msg != "" {
		text = reason + ": " + msg
	}
	return "attempt " + strconv.Itoa(int(attempt)) + " " + text
}

// TimedOut reports whether an IN_PROGRESS task started at startedMs (Unix
// milliseconds) has run out of time at nowMs; a zero timeout never ends.
func TimedOut(state otav1.TaskState, startedMs int64, timeout time.Duration, nowMs int64) bool {
	t := timeout.Milliseconds()
	return state == otav1.TaskInProgress && t > 0 && startedMs > 0 && nowMs-startedMs >= t
}

// RetryDue reports whether a QUEUED task waiting for its retry may be
// pushed again.
func RetryDue(state otav1.TaskState, retryAtMs, nowMs int64) bool {
	return state == otav1.TaskQueued && retryAtMs <= nowMs
}

// FailureReason maps a progress failure step to a reason code.
func FailureReason(step int32) string {
	switch step {
	case -2:
		return otav1.FailureDownload
	case -3:
		return otav1.FailureVerification
	case -4:
		return otav1.FailureFlash
	default:
		return otav1.FailureUpgrade
	}
}

// DefaultMaxPushes is how often one attempt is pushed without an answer
// when a campaign does not say.
const DefaultMaxPushes = 3

// PushAction is what becomes of a NOTIFIED task that has heard nothing
// from its device since its push.
type PushAction int

const (
	KeepWaiting PushAction = iota
	Repush                 // push the same attempt again
	NoResponse             // give up: the device never took a push
)

// SilentPush decides for a NOTIFIED task. pushes is how often the attempt
// went out (a task rebuilt from an older record counts as pushed once),
// since is the time since the last push. A device that informs its old
// version again (reconnected) came back without having taken the push, so
// it is due after repushAfter; a device that stays silent is due after
// silence (the campaign's timeout). A device that crashes on every push
// must not be made to crash forever: after maxPushes it fails.
func SilentPush(pushes, maxPushes int32, since, repushAfter, silence time.Duration, reconnected bool) PushAction {
	due := (reconnected && since >= repushAfter) || (silence > 0 && since >= silence)
	if !due {
		return KeepWaiting
	}
	if maxPushes <= 0 {
		maxPushes = DefaultMaxPushes
	}
	if max(pushes, 1) >= maxPushes {
		return NoResponse
	}
	return Repush
}
