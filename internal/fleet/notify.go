package fleet

import (
	"sync"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// Notifier hears of what the engine changed: the campaign reconcilers (to
// write status) and the app API (to stream a device's progress). The
// engine calls it outside its lock, one call at a time and in the order of
// the changes, so a notifier may take its own locks; it must not block
// for long, nor call back into the engine.
type Notifier interface {
	// CampaignChanged: a campaign's status changed; at most once per
	// statusInterval per campaign.
	CampaignChanged(namespace string, ref otav1.CampaignReference)
	// TaskChanged: a device's task changed state or step.
	TaskChanged(DeviceTask)
}

// notifiers are the engine's listeners and the changes not yet delivered.
type notifiers struct {
	list []notifierEntry
	// tasks counts the entries that want TaskChanged: without any, no
	// task view is built on the hot path.
	tasks int
	notes []note
	// deliver orders deliveries: it is taken before the engine's lock is
	// released, so changes reach notifiers in the order they were made.
	deliver sync.Mutex
}

type notifierEntry struct {
	n     Notifier
	tasks bool
}

// note is one change to deliver: a task's view, or else a campaign.
type note struct {
	namespace string
	ref       otav1.CampaignReference
	task      *DeviceTask
}

// Notify adds a notifier; tasks says whether it wants TaskChanged. The
// returned function removes it.
func (e *Engine) Notify(n Notifier, tasks bool) (remove func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	entry := &notifierEntry{n: n, tasks: tasks}
	e.notify.list = append(e.notify.list, *entry)
	if tasks {
		e.notify.tasks++
	}
	return func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		for i, en := range e.notify.list {
			if en.n == n {
				e.notify.list = append(e.notify.list[:i:i], e.notify.list[i+1:]...)
				if en.tasks {
					e.notify.tasks--
				}
				return
			}
		}
	}
}

// taskChanged records a task's change for the notifiers that follow tasks.
// Called with e.mu held.
func (e *Engine) taskChanged(t *task) {
	if e.notify.tasks > 0 && t.c.hasSpec {
		v := taskView(t)
		e.notify.notes = append(e.notify.notes, note{task: &v})
	}
}

// campaignChanged records a campaign's status change. Called with e.mu held.
func (e *Engine) campaignChanged(c *campaign) {
	if len(e.notify.list) > 0 {
		e.notify.notes = append(e.notify.notes, note{namespace: c.key.namespace, ref: c.spec.Ref})
	}
}

// unlock releases the engine's lock and then delivers the changes made
// under it.
func (e *Engine) unlock() {
	notes := e.notify.notes
	if len(notes) == 0 {
		e.mu.Unlock()
		return
	}
	e.notify.notes = nil
	list := e.notify.list
	e.notify.deliver.Lock()
	e.mu.Unlock()
	defer e.notify.deliver.Unlock()
	for _, nt := range notes {
		for _, en := range list {
			switch {
			case nt.task == nil:
				en.n.CampaignChanged(nt.namespace, nt.ref)
			case en.tasks:
				en.n.TaskChanged(*nt.task)
			}
		}
	}
}
