package fleet

import (
	"strconv"
	"time"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/rollout"
)

// setState moves a task to a new state and keeps the counters, the reasons
// and the dirty marks right. It is the only place a task's state changes.
func (e *Engine) setState(t *task, to otav1.TaskState, now time.Time) {
	from := t.state
	if from == to && from != "" {
		e.markTask(t)
		return
	}
	c := t.c
	defer e.taskChanged(t)
	wasReverted := t.reverted
	t.reverted = to == otav1.TaskFailed && t.reason == otav1.FailureReverted
	c.count(from, wasReverted, to, t.reverted)
	if to.Unsuccessful() {
		c.addReason(t.reason, t.message, 1)
	}
	if from.Active() || to.Active() {
		// The inventory's TASK column mirrors the lock; it rides with the
		// next inventory write or a slow write of its own.
		e.markLock(t.dev)
	}
	t.state = to
	t.updated = now.Unix()
	e.markTask(t)
	if t.dev.task == t && !to.Active() {
		t.dev.task = nil
	}
}

// finish ends a task in a final state.
func (e *Engine) finish(t *task, to otav1.TaskState, reason, msg string, now time.Time) {
	if !t.state.Active() {
		return
	}
	t.reason, t.message, t.retryAt = reason, msg, 0
	e.setState(t, to, now)
}

// fail handles a failure a device reported or a timeout: it schedules a
// retry while the campaign allows one, and ends the task otherwise.
func (e *Engine) fail(t *task, to otav1.TaskState, reason, msg string, now time.Time) {
	c := t.c
	if !c.hasSpec {
		// Rebuilt from its slices, the campaign learns its retry policy
		// only with its first Upsert: until then the failure waits as a
		// due retry, and settleLoaded decides (found by the chaos harness:
		// failures right after a takeover were final, not retried).
		t.reason, t.message = reason, rollout.RetryMessage(t.attempt, reason, msg)
		t.retryAt, t.started, t.pushes = now.UnixMilli(), 0, 0
		e.setState(t, otav1.TaskQueued, now)
		return
	}
	policy := rollout.Retry{Count: c.spec.RetryCount, Interval: c.spec.RetryInterval, TimedOut: c.spec.RetryTimedOut}
	if at := rollout.AfterFailure(to, t.attempt, policy, c.over(now), now); !at.IsZero() {
		t.reason = reason
		t.message = rollout.RetryMessage(t.attempt, reason, msg)
		t.retryAt = at.UnixMilli()
		t.started, t.pushes = 0, 0
		e.setState(t, otav1.TaskQueued, now)
		return
	}
	if t.attempt > 1 {
		msg = "after " + strconv.Itoa(int(t.attempt)) + " attempts: " + msg
	}
	e.finish(t, to, reason, msg, now)
}

// markTask marks the task's slice for writing.
func (e *Engine) markTask(t *task) {
	t.slice.dirty = true
	e.durable.marks++
	t.dev.changedSeq = e.durable.next()
}

// markDevice marks the device's inventory slice for writing. Only a
// changed version must be written before the report is acknowledged
// (critical): a new device or a last-seen time is reported again on the
// device's next connect, and waiting for them would make a fleet's boot
// storm fill the broker's in-flight window.
func (e *Engine) markDevice(d *device, critical bool) {
	if d.slice != nil {
		d.slice.dirty = true
		if critical {
			e.durable.marks++
			d.changedSeq = e.durable.next()
		}
	}
}

// markLock marks the device's inventory slice for a slow write: only the
// mirror of its lock changed. Locks are rebuilt from the UpgradeSlices, so
// the mirror is for people (the TASK column), and a write of its own at
// most every slowWriteInterval keeps it true within that window.
func (e *Engine) markLock(d *device) {
	if d.slice != nil {
		d.slice.slowDirty = true
	}
}

func sliceName(base string, n int) string {
	// Object names are at most 253 characters; campaign and product names
	// are too, so keep room for the suffix.
	if len(base) > 240 {
		base = base[:240]
	}
	return base + "-" + strconv.Itoa(n)
}

// unanswered handles a NOTIFIED task whose device has not answered its
// push: push the same attempt again, or give up on the device
// (rollout.SilentPush).
func (e *Engine) unanswered(t *task, reconnected bool, now time.Time) {
	c := t.c
	since := time.Duration(now.UnixMilli()-t.notified) * time.Millisecond
	silence := c.spec.Timeout
	if t.unsure && (silence == 0 || silence > e.opts.RebuiltRepushAfter) {
		silence = e.opts.RebuiltRepushAfter
	}
	switch rollout.SilentPush(t.pushes, c.spec.MaxPushes, since, e.opts.RepushAfter, silence, reconnected) {
	case rollout.Repush:
		t.attempt-- // the same attempt, not a retry
		e.setState(t, otav1.TaskQueued, now)
		c.enqueueAgain(t)
		e.stats.Repushed++
	case rollout.NoResponse:
		e.finish(t, otav1.TaskFailed, otav1.FailureNoResponse,
			"no progress after "+strconv.Itoa(int(max(t.pushes, 1)))+" pushes", now)
	}
}
