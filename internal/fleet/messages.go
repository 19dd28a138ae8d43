package fleet

import (
	"context"
	"strings"
	"time"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/protocol"
	"github.com/otafleet/otafleet/internal/rollout"
)

// lastSeenResolution: a device's last-seen time is written back only when
// it moved by this much, so that repeated informs do not cause writes.
const lastSeenResolution = 10 * time.Minute

// HandleBatch applies decoded device messages; it is the MQTT gateway's
// handler. It blocks until the engine has rebuilt its state, so that
// nothing a device reports is applied to a half-loaded fleet; the gateway's
// bounded queue absorbs the wait. Replies to devices' requests are queued
// for the sender. It returns a function that blocks until what the batch
// changed is written (nil when it changed nothing): the gateway
// acknowledges the messages only then.
func (e *Engine) HandleBatch(ctx context.Context, msgs []protocol.Message) (durable func(context.Context) error) {
	select {
	case <-e.readyCh:
	case <-ctx.Done():
		return nil
	}
	var replies []outgoing
	e.mu.Lock()
	marks := e.durable.marks
	now := e.now()
	var changed uint64 // the latest changedSeq of the batch's devices
	for i := range msgs {
		m := &msgs[i]
		pr := e.products[m.ProductKey]
		if pr == nil {
			e.stats.UnknownProduct++
			e.keepEarly(m, now)
			continue
		}
		switch m.Kind {
		case protocol.KindInform:
			e.inform(pr, m, now)
		case protocol.KindProgress:
			e.progress(pr, m, now)
		case protocol.KindFirmwareGet, protocol.KindRequest:
			replies = append(replies, e.pending(pr, m))
		}
		if d := pr.devices[m.DeviceName]; d != nil {
			changed = max(changed, d.changedSeq)
		}
	}
	// A report that changed nothing may be the broker's second delivery of
	// one whose change is not written yet: it waits for that write too.
	seq := max(e.durable.take(marks), changed)
	// A reply may name a push whose NOTIFIED state is not written yet: it
	// waits, as that push does, for everything applied so far.
	replySeq := e.durable.seq
	e.unlock()
	if replies = e.durable.hold(replySeq, replies); len(replies) > 0 {
		// The sender publishes them: waiting for PUBACKs here would stall
		// the gateway's queue. A full outbox is backpressure.
		select {
		case e.outbox <- replies:
		case <-ctx.Done():
		}
	}
	e.durable.waitFor(seq, len(msgs))
	return e.durableFunc(seq)
}

func (e *Engine) inform(pr *product, m *protocol.Message, now time.Time) {
	e.stats.Informs++
	d := pr.devices[m.DeviceName]
	isNew := d == nil
	if isNew {
		d = e.register(pr, m.DeviceName)
	}
	changed := d.setVersion(pr, m.Module, m.Version)
	if changed || now.Unix()-d.lastSeen >= int64(lastSeenResolution/time.Second) {
		d.lastSeen = now.Unix()
		e.markDevice(d, changed && !isNew)
	}
	freed := false
	// A campaign rebuilt from its slices knows its target only once its
	// reconciler upserted it; settleLoaded then looks at the version.
	if t := d.task; t != nil && t.c.hasSpec && t.c.spec.Module == m.Module {
		freed = e.informTask(t, m.Version, now)
	}
	// Dynamic campaigns look at every report of a free device, not only at
	// changes: a device that was busy reports its versions again once its
	// other upgrade is done, and that is when it is taken. A device this
	// report freed is offered to the campaigns of every module, on the
	// versions it reported last: after a reboot its reports of the other
	// modules may have been handled before this one (the broker does not
	// keep their order across the gateway's workers), and it will not
	// send them again. A device busy in another campaign is recorded as
	// Busy, as the console guide shows it, and taken once it is free.
	if !changed && !isNew && !freed && !e.hasDynamic(pr) {
		return
	}
	e.offer(pr, d, m.Module, freed, now)
}

// offer gives a device to the dynamic campaigns of module, or of every
// module when freed (its task just ended, so campaigns that found it busy
// may take it now).
func (e *Engine) offer(pr *product, d *device, module string, freed bool, now time.Time) {
	for c := range pr.campaigns {
		if c.spec.Dynamic && c.hasSpec && c.stage.HasSelected() && (freed || c.spec.Module == module) {
			e.consider(c, d, now)
		}
	}
}

// informTask applies a device's report of its module's version to its
// active task (rollout.Inform) and reports whether that freed the device.
func (e *Engine) informTask(t *task, version string, now time.Time) bool {
	c := t.c
	switch rollout.Inform(t.state, t.from, c.spec.Target, version, c.spec.Soak) {
	case rollout.Succeed:
		t.step = 100
		e.finish(t, otav1.TaskSucceeded, "", "", now)
		e.stats.Succeeded++
		return true
	case rollout.StartSoak:
		// The device keeps its lock while it soaks: no other campaign
		// flashes a device under watch.
		t.step, t.soakStart, t.reason, t.message = 100, now.UnixMilli(), "", ""
		e.setState(t, otav1.TaskSoaking, now)
	case rollout.Revert:
		// Final for this campaign: a later report of the target does not
		// make a device that rolled back once a success.
		e.finish(t, otav1.TaskFailed, otav1.FailureReverted, rollout.RevertMessage(version, t.soakStart, now.UnixMilli()), now)
		return true
	case rollout.WrongVersion:
		// Mid-upgrade, the device runs neither what it had nor the
		// target: it flashed something else or fell back elsewhere.
		e.fail(t, otav1.TaskFailed, otav1.FailureWrongVersion,
			"the device reported "+version+", neither "+t.from+" nor the target", now)
		return t.dev.task == nil
	case rollout.Reconnected:
		// The device (re)connected without having taken the push: it was
		// offline (devices keep no session), or it crashed on it.
		e.unanswered(t, true, now)
	}
	return false
}

// register adds a device to the product's inventory, in the last slice with
// room.
func (e *Engine) register(pr *product, name string) *device {
	// Copies: the gateway reuses the buffers a message points into.
	d := &device{name: strings.Clone(name)}
	pr.devices[name] = d
	var s *deviceSlice
	if n := len(pr.slices); n > 0 && len(pr.slices[n-1].devices) < otav1.MaxDevicesPerSlice {
		s = pr.slices[n-1]
	} else {
		s = &deviceSlice{name: sliceName(pr.name, pr.nextSlice), product: pr}
		pr.nextSlice++
		pr.slices = append(pr.slices, s)
	}
	s.devices = append(s.devices, d)
	d.slice = s
	s.dirty = true
	return d
}

func (e *Engine) progress(pr *product, m *protocol.Message, now time.Time) {
	e.stats.Progress++
	d := pr.devices[m.DeviceName]
	if d == nil || d.task == nil || d.task.c.spec.Module != m.Module {
		e.stats.Stale++
		return
	}
	t := d.task
	if t.state != otav1.TaskNotified && t.state != otav1.TaskInProgress {
		e.stats.Stale++
		return
	}
	step := int32(m.Step)
	if step < 0 {
		t.step = step
		e.fail(t, otav1.TaskFailed, rollout.FailureReason(step), m.Desc, now)
		return
	}
	if t.state == otav1.TaskNotified {
		t.step = step
		t.started = now.UnixMilli()
		e.setState(t, otav1.TaskInProgress, now)
		return
	}
	// A step alone is written slowly: the next state change carries it,
	// and writing every percentage would cost a write per message.
	if step != t.step {
		t.slice.slowDirty = true
	}
	t.step = step
	t.c.statusDirty = true
	t.message = m.Desc
	e.taskChanged(t)
}

// pending answers a device's request for its pending upgrade: the upgrade
// of its active task when that task was pushed, nothing otherwise.
func (e *Engine) pending(pr *product, m *protocol.Message) outgoing {
	e.stats.Requests++
	out := outgoing{kind: m.Kind, pk: pr.key, device: m.DeviceName, id: m.ID}
	d := pr.devices[m.DeviceName]
	if d == nil || d.task == nil {
		return out
	}
	t := d.task
	if t.c.spec.Module != m.Module || (t.state != otav1.TaskNotified && t.state != otav1.TaskInProgress) {
		return out
	}
	out.image, out.module, out.version, out.has = t.c.spec.Image, t.c.spec.Module, t.c.spec.Target, true
	return out
}

func (e *Engine) hasDynamic(pr *product) bool {
	for c := range pr.campaigns {
		if c.spec.Dynamic {
			return true
		}
	}
	return false
}
