package fleet

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/rollout"
)

// writeTimeout bounds one slice write.
const writeTimeout = 30 * time.Second

// writeJob is one slice write: a create the first time, then merge patches
// that replace the slice's list. The engine is the only writer, so a patch
// needs no resourceVersion and never conflicts.
type writeJob struct {
	obj    client.Object
	create bool
	// patch is the merge patch of an update, a snapshot the engine no
	// longer touches: the writer encodes it, outside the engine's lock (a
	// flush of a million tasks held the lock 3.9 s encoding them).
	patch any
	done  func(created bool)
}

func (e *Engine) flushLoop(ctx context.Context) {
	wait := e.opts.FlushInterval
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return // Start writes the rest once the last tick is over
		case <-e.durable.urgent:
			// Many reports wait for their acknowledgement: flush within
			// the flush interval, whatever the write rate would allow.
			if wait <= e.opts.FlushInterval {
				continue // the timer fires soon enough
			}
			timer.Reset(e.opts.FlushInterval)
			wait = e.opts.FlushInterval
			continue
		case <-timer.C:
		}
		start := time.Now()
		n := e.flush(ctx)
		wait = e.nextFlush(n)
		if e.durable.backlog() >= UrgentBacklog {
			wait = min(wait, e.opts.FlushInterval)
		}
		wait = max(wait-time.Since(start), 0)
		timer.Reset(wait)
	}
}

// nextFlush is the wait after a flush of n writes: the flush interval, or
// longer when n writes at WriteRate take longer, up to MaxFlushInterval.
// Slices that change all the time (a large rollout) are then written once
// per longer window instead of once a second each.
func (e *Engine) nextFlush(n int) time.Duration {
	byRate := time.Duration(n) * time.Second / time.Duration(e.opts.WriteRate)
	return min(max(e.opts.FlushInterval, byRate), max(e.opts.FlushInterval, e.opts.MaxFlushInterval))
}

// Flush writes every dirty slice now; tests and shutdown use it.
func (e *Engine) Flush(ctx context.Context) { e.flush(ctx) }

// flush writes the dirty slices and returns how many writes it made.
func (e *Engine) flush(ctx context.Context) int {
	// One flush at a time: two writes of one slice in flight could land
	// out of order and leave the older content.
	e.flushMu.Lock()
	defer e.flushMu.Unlock()
	e.mu.Lock()
	jobs := e.collectWrites()
	// Every change numbered up to here is in these jobs or written already.
	snap := e.durable.seq
	e.unlock()
	if e.writer.writeAll(ctx, jobs) {
		e.release(ctx, e.durable.advance(snap))
	}
	if len(jobs) == 0 {
		return 0
	}
	e.mu.Lock()
	for _, c := range e.campaigns {
		if c.stage == rollout.Selected && allCreated(c) {
			c.stage = rollout.Recorded
			c.statusDirty = true
		}
		if releasable(c) {
			c.release()
		}
	}
	e.unlock()
	return len(jobs)
}

// releasable: a finished static batch whose tasks are all written needs
// only its counters from now on; holding its tasks would let memory grow
// with every batch ever run.
func releasable(c *campaign) bool {
	return c.hasSpec && c.stage == rollout.Recorded && c.key.kind == otav1.KindUpgradeBatch && !c.spec.Dynamic &&
		c.active() == 0 && allCreated(c)
}

// release drops a finished batch's tasks and slices, keeping its counters
// and failure reasons for status. The UpgradeSlices keep the record.
func (c *campaign) release() {
	c.sliceCount = len(c.slices)
	c.tasks, c.slices, c.queue, c.again, c.waveStats = map[string]*task{}, nil, nil, nil, nil
	c.stage, c.scanned, c.walk = rollout.Released, false, scanWalk{}
}

func allCreated(c *campaign) bool {
	for _, s := range c.slices {
		if !s.created || s.dirty {
			return false
		}
	}
	return true
}

// collectWrites snapshots every dirty slice into a write job.
func (e *Engine) collectWrites() []writeJob {
	var jobs []writeJob
	now := e.now()
	for _, pr := range e.products {
		for _, s := range pr.slices {
			if due(s.dirty, &s.slowDirty, &s.lastWrite, now) {
				s.dirty = false
				jobs = append(jobs, e.deviceSliceJob(s))
			}
		}
	}
	for _, c := range e.campaigns {
		if !c.hasSpec {
			continue
		}
		for _, s := range c.slices {
			if due(s.dirty, &s.slowDirty, &s.lastWrite, now) {
				s.dirty = false
				jobs = append(jobs, e.upgradeSliceJob(s))
			}
		}
	}
	return jobs
}

// slowWriteInterval is the least time between two writes of a slice whose
// only changes are of the slow kind (progress steps, lock mirrors): they
// are kept, within the write budget, and a state change carries them
// sooner.
const slowWriteInterval = 5 * time.Second

// due reports whether a slice is written in this flush, and resets the
// slow mark and the last write time when it is.
func due(dirty bool, slow *bool, last *time.Time, now time.Time) bool {
	if !dirty && !(*slow && now.Sub(*last) >= slowWriteInterval) {
		return false
	}
	*slow, *last = false, now
	return true
}

func (e *Engine) deviceSliceJob(s *deviceSlice) writeJob {
	pr := s.product
	recs := make(otav1.DeviceList, len(s.devices))
	for i, d := range s.devices {
		recs[i] = otav1.DeviceRecord{Name: d.name, Modules: append([]otav1.ModuleVersion(nil), d.modules...), LastSeen: d.lastSeen}
		if t := d.task; t != nil {
			recs[i].Lock = &otav1.DeviceLock{Campaign: t.c.ref(), Module: t.c.spec.Module, State: t.state}
		}
	}
	obj := &otav1.DeviceSlice{ProductKey: pr.key, Devices: recs}
	obj.Name, obj.Namespace = s.name, pr.namespace
	obj.Labels = map[string]string{otav1.LabelProductKey: pr.key}
	obj.OwnerReferences = []metav1.OwnerReference{{
		APIVersion: otav1.GroupVersion.String(), Kind: "Product", Name: pr.name, UID: pr.uid,
	}}
	return e.job(obj, !s.created, map[string]any{"devices": recs}, func(ok bool) {
		if ok {
			s.created = true
		} else {
			s.dirty = true
		}
	})
}

func (e *Engine) upgradeSliceJob(s *upgradeSlice) writeJob {
	c := s.campaign
	recs := make(otav1.TaskList, len(s.tasks))
	for i, t := range s.tasks {
		recs[i] = t.record()
	}
	obj := &otav1.UpgradeSlice{Campaign: c.spec.Ref, ProductKey: c.spec.ProductKey, Module: c.spec.Module, Tasks: recs}
	obj.Name, obj.Namespace = s.name, c.key.namespace
	obj.Labels = map[string]string{
		otav1.LabelProductKey: c.spec.ProductKey, otav1.LabelCampaign: c.key.name, otav1.LabelKind: string(c.key.kind),
	}
	obj.OwnerReferences = []metav1.OwnerReference{{
		APIVersion: otav1.GroupVersion.String(), Kind: string(c.key.kind), Name: c.key.name, UID: c.spec.UID,
	}}
	return e.job(obj, !s.created, map[string]any{"tasks": recs}, func(ok bool) {
		if ok {
			s.created = true
		} else {
			s.dirty = true
		}
	})
}

func (e *Engine) job(obj client.Object, create bool, patch map[string]any, after func(bool)) writeJob {
	j := writeJob{obj: obj, create: create, patch: patch}
	j.done = func(ok bool) {
		e.mu.Lock()
		after(ok)
		e.unlock()
	}
	return j
}

// release hands pushes whose state is now written to the sender. After
// the sender stopped, they stay unsent: their tasks are NOTIFIED, and a
// device that never hears of them is pushed again (rollout.SilentPush).
func (e *Engine) release(ctx context.Context, out []outgoing) {
	if len(out) == 0 {
		return
	}
	select {
	case e.outbox <- out:
	case <-e.sendStopped:
	case <-ctx.Done():
	}
}
