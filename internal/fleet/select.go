package fleet

import (
	"math"
	"time"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/rollout"
)

// maxUnknownExamples bounds the unknown List names a status shows.
const maxUnknownExamples = 5

// maxSelectPerTick bounds the devices one step of a static campaign's
// selection considers, and so how long it holds the lock (about 2 us a
// device): a million devices selected at once held it 2 s, with device
// reports and status reads waiting behind.
const maxSelectPerTick = 50000

// selectCursor is where a selection taken in steps goes on.
type selectCursor struct {
	next           int  // the next slice of the inventory, or name of the List
	unknownCounted bool // the List's names the inventory lacks are counted
}

// selectSome runs a campaign's first selection in inventory order, budget
// devices at a time for a static campaign, and reports whether it is
// complete. A dynamic campaign selects in one step: devices that report
// while it selects would otherwise miss it. Inventory order does not
// depend on map order (waves are stable), and it pushes the devices of
// one DeviceSlice together, so that their new versions land in one or two
// writes of that slice instead of in every flush of the rollout (a list
// in name order touched every slice in every flush: 0.17 writes per device
// at 100,000 instead of 0.05). A list with waves keeps its own order (its
// first names are the first wave), and so does a verification run (its
// status lists the devices as the run names them).
func (e *Engine) selectSome(c *campaign, now time.Time, budget int) (complete bool) {
	if c.spec.Dynamic {
		budget = math.MaxInt
	}
	pr, cur := c.product, &c.cursor
	if names := c.spec.Devices; names != nil && (c.spec.Verification || len(c.spec.Waves) > 0) {
		end := cur.next + min(budget, len(names)-cur.next)
		for _, name := range names[cur.next:end] {
			if d := pr.devices[name]; d != nil {
				e.consider(c, d, now)
			} else {
				e.unknownDevice(c, name, now)
			}
		}
		if cur.next = end; end < len(names) {
			return false
		}
		e.assignWaves(c)
		return true
	}
	if !cur.unknownCounted {
		for _, name := range c.spec.Devices {
			if pr.devices[name] == nil {
				e.unknownDevice(c, name, now)
			}
		}
		cur.unknownCounted = true
	}
	for ; cur.next < len(pr.slices) && budget > 0; cur.next++ {
		s := pr.slices[cur.next]
		for _, d := range s.devices {
			if c.devices == nil || c.devices[d.name] {
				e.consider(c, d, now)
			}
		}
		budget -= len(s.devices)
	}
	if cur.next < len(pr.slices) {
		return false
	}
	e.assignWaves(c)
	return true
}

// unknownDevice records a name of a List scope the inventory lacks: a
// strict campaign fails it, a batch counts it and skips it.
func (e *Engine) unknownDevice(c *campaign, name string, now time.Time) {
	if c.spec.Verification {
		e.recordFailure(c, &device{name: name}, rollout.ReasonNotFound, "the device has not reported to the platform", now)
	} else if c.unknown++; len(c.unknownExamples) < maxUnknownExamples {
		c.unknownExamples = append(c.unknownExamples, name)
	}
}

// consider selects one device for a campaign if the campaign's rules allow
// (rollout.Select). It is called at selection and, for dynamic campaigns,
// whenever a device registers or reports a new version.
func (e *Engine) consider(c *campaign, d *device, now time.Time) {
	if c.over(now) {
		return
	}
	if prev := c.tasks[d.name]; prev != nil && !rollout.Reselectable(c.spec.Dynamic, prev.state, prev.reason) {
		return
	}
	ver, reported := d.version(c.spec.Module)
	cand := rollout.Candidate{
		InScope: inScope(c, d), Version: ver, Reported: reported, Target: c.spec.Target,
		Sources: c.sources, Strict: c.spec.Verification, Overwrite: c.spec.Overwrite,
	}
	holder := d.task
	if holder != nil && holder.c != c {
		cand.Holder = holder.state
	}
	sel := rollout.Select(cand)
	switch sel.Verdict {
	case rollout.Skip:
		return
	case rollout.FailTask:
		e.recordFailure(c, d, sel.Reason, failureText(sel.Reason, c, ver, holder), now)
		return
	case rollout.TakeOver:
		e.finish(holder, otav1.TaskCanceled, rollout.ReasonOverwritten, "taken over by "+c.ref(), now)
	}
	state := otav1.TaskQueued
	if c.spec.Confirm {
		state = otav1.TaskConfirm
	}
	t := e.taskFor(c, d, now)
	t.from, t.reason, t.message, t.step, t.attempt, t.retryAt, t.started, t.pushes = ver, "", "", 0, 0, 0, 0, 0
	t.wave = max(c.currentWave, 1)
	e.setState(t, state, now)
	d.task = t
	if state == otav1.TaskQueued {
		c.enqueue(t)
	}
}

// failureText says why selection failed a device, for its task's message.
func failureText(reason string, c *campaign, ver string, holder *task) string {
	switch reason {
	case rollout.ReasonNotReported:
		return "the device has not reported module " + c.spec.Module
	case rollout.ReasonAlreadyOnTarget:
		return "the device already runs " + ver
	case otav1.FailureWrongVersion:
		return "the device runs " + ver + ", not a source version"
	case otav1.FailureBusy:
		return "held by " + holder.c.ref()
	}
	return reason
}

func inScope(c *campaign, d *device) bool {
	if c.devices != nil && !c.devices[d.name] {
		return false
	}
	return rollout.InGray(c.spec.GrayPercent, c.spec.ProductKey, d.name)
}

// recordFailure records a device as FAILED without it ever holding a lock.
func (e *Engine) recordFailure(c *campaign, d *device, reason, msg string, now time.Time) {
	t := e.taskFor(c, d, now)
	if t.state == otav1.TaskFailed && t.reason == reason {
		return
	}
	t.reason, t.message = reason, msg
	e.setState(t, otav1.TaskFailed, now)
}

// taskFor returns the campaign's task for a device, creating it in a slice
// with room.
func (e *Engine) taskFor(c *campaign, d *device, now time.Time) *task {
	if t := c.tasks[d.name]; t != nil {
		if t.state.Unsuccessful() {
			c.addReason(t.reason, "", -1)
		}
		return t
	}
	t := &task{dev: d, c: c, updated: now.Unix()}
	c.tasks[d.name] = t
	s := c.openSlice()
	s.tasks = append(s.tasks, t)
	t.slice = s
	return t
}

func (c *campaign) openSlice() *upgradeSlice {
	if n := len(c.slices); n > 0 && len(c.slices[n-1].tasks) < otav1.MaxDevicesPerSlice {
		return c.slices[n-1]
	}
	s := &upgradeSlice{name: sliceName(c.key.name, c.nextSlice), campaign: c}
	c.nextSlice++
	c.slices = append(c.slices, s)
	return s
}

// assignWaves splits the selected, not yet pushed tasks into waves by their
// cumulative percentages, in selection order.
func (e *Engine) assignWaves(c *campaign) {
	if len(c.spec.Waves) == 0 {
		return
	}
	var pending []*task
	for _, s := range c.slices {
		for _, t := range s.tasks {
			if t.state == otav1.TaskQueued || t.state == otav1.TaskConfirm {
				pending = append(pending, t)
			}
		}
	}
	for i, t := range pending {
		t.wave = rollout.WaveOf(i, len(pending), c.spec.Waves)
	}
}
