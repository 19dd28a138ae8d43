package fleet

import (
	"hash/fnv"
	"slices"
	"time"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// Reasons a strict (verification) campaign records for devices it cannot
// run on.
const (
	reasonNotFound        = "DeviceNotFound"
	reasonNotReported     = "ModuleNotReported"
	reasonAlreadyOnTarget = "AlreadyOnTarget"
	reasonOverwritten     = "Overwritten"
	reasonCanceled        = "Canceled"
	reasonScheduleEnded   = "ScheduleEnded"
	reasonAborted         = "Aborted"
)

// maxUnknownExamples bounds the unknown List names a status shows.
const maxUnknownExamples = 5

// selectAll runs a campaign's first selection: a list in its order, or the
// product's devices in inventory order. Inventory order does not depend on
// map order (waves are stable), and it pushes the devices of one
// DeviceSlice together, so that their new versions land in one or two
// writes of that slice instead of in every flush of the rollout.
func (e *Engine) selectAll(c *campaign, now time.Time) {
	pr := c.product
	var names []string
	if c.spec.Devices != nil {
		names = slices.Clone(c.spec.Devices)
	} else {
		names = make([]string, 0, len(pr.devices))
		for _, s := range pr.slices {
			for _, d := range s.devices {
				names = append(names, d.name)
			}
		}
	}
	for _, name := range names {
		d := pr.devices[name]
		if d == nil {
			if c.spec.Verification {
				e.recordFailure(c, &device{name: name}, reasonNotFound, "the device has not reported to the platform", now)
			} else if c.unknown++; len(c.unknownExamples) < maxUnknownExamples {
				c.unknownExamples = append(c.unknownExamples, name)
			}
			continue
		}
		e.consider(c, d, now)
	}
	e.assignWaves(c)
}

// consider selects one device for a campaign if the campaign's rules allow.
// It is called at selection and, for dynamic campaigns, whenever a device
// registers or reports a new version.
func (e *Engine) consider(c *campaign, d *device, now time.Time) {
	if c.over(now) {
		return
	}
	if prev := c.tasks[d.name]; prev != nil && !reselectable(c, prev) {
		return
	}
	if !inScope(c, d) {
		return
	}
	ver, ok := d.version(c.spec.Module)
	switch {
	case !ok:
		e.strictFail(c, d, reasonNotReported, "the device has not reported module "+c.spec.Module, now)
		return
	case ver == c.spec.Target:
		e.strictFail(c, d, reasonAlreadyOnTarget, "the device already runs "+ver, now)
		return
	case len(c.sources) > 0 && !c.sources[ver]:
		e.strictFail(c, d, otav1.FailureWrongVersion, "the device runs "+ver+", not a source version", now)
		return
	}
	if h := d.task; h != nil && h.c != c {
		if !c.spec.Overwrite || h.state.Started() {
			e.recordFailure(c, d, otav1.FailureBusy, "held by "+h.c.ref(), now)
			return
		}
		e.finish(h, otav1.TaskCanceled, reasonOverwritten, "taken over by "+c.ref(), now)
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

// reselectable: a dynamic campaign takes a device again that failed only
// because another campaign held it (the guide's multi-module scenario).
func reselectable(c *campaign, t *task) bool {
	return c.spec.Dynamic && t.state == otav1.TaskFailed && t.reason == otav1.FailureBusy
}

func inScope(c *campaign, d *device) bool {
	if c.devices != nil && !c.devices[d.name] {
		return false
	}
	if c.spec.GrayPercent > 0 && c.spec.GrayPercent < 100 {
		return grayBucket(c.spec.ProductKey, d.name) < uint32(c.spec.GrayPercent)
	}
	return true
}

// grayBucket places a device in one of 100 buckets by a stable hash, so a
// gray release picks the same devices every time and for every replica.
func grayBucket(productKey, name string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(productKey))
	_, _ = h.Write([]byte{'/'})
	_, _ = h.Write([]byte(name))
	return h.Sum32() % 100
}

// strictFail records a failure for verification campaigns; batches just
// skip such devices.
func (e *Engine) strictFail(c *campaign, d *device, reason, msg string, now time.Time) {
	if c.spec.Verification {
		e.recordFailure(c, d, reason, msg, now)
	}
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
	waves := c.spec.Waves
	if len(waves) == 0 {
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
	n := len(pending)
	w := 0
	for i, t := range pending {
		for w < len(waves)-1 && i >= ceilPercent(n, waves[w].Percent) {
			w++
		}
		t.wave = int32(w + 1)
	}
}

func ceilPercent(n int, percent int32) int {
	return (n*int(percent) + 99) / 100
}
