package appapi

import (
	"sync"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/fleet"
)

// fakeEngine stands in for the rollout engine in the unit tests: a map of
// device tasks, the engine's state rules for confirm and cancel, and a
// record of what was called.
type fakeEngine struct {
	mu       sync.Mutex
	notReady bool
	tasks    map[device]*fleet.DeviceTask // nil: known device without a task
	confirms []device
	cancels  []device
	notifier fleet.Notifier
}

func newFake() *fakeEngine { return &fakeEngine{tasks: map[device]*fleet.DeviceTask{}} }

// add makes a device known, with a task in state st ("" for none).
func (f *fakeEngine) add(name string, st otav1.TaskState, confirm bool) {
	d, ok := parseDevice(name)
	if !ok {
		panic(name)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if st == "" {
		f.tasks[d] = nil
		return
	}
	f.tasks[d] = &fleet.DeviceTask{
		ProductKey: d.pk, Device: d.dn, Module: "default", FromVersion: "1.0.0", Target: "2.0.0",
		State: st, Confirm: confirm, Size: 4096, SignMethod: otav1.SignMethodMD5,
		Sign: "0123456789abcdef0123456789abcdef", Current: "1.0.0",
	}
}

func (f *fakeEngine) state(name string) otav1.TaskState {
	d, _ := parseDevice(name)
	f.mu.Lock()
	defer f.mu.Unlock()
	if t := f.tasks[d]; t != nil {
		return t.State
	}
	return ""
}

func (f *fakeEngine) calls() (confirms, cancels int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.confirms), len(f.cancels)
}

// change updates a device's task as the engine would, and tells the
// notifier after the change, in order, as the engine does.
func (f *fakeEngine) change(name string, st otav1.TaskState, step int32) {
	d, _ := parseDevice(name)
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.tasks[d]
	t.State, t.Step = st, step
	if f.notifier != nil {
		f.notifier.TaskChanged(*t)
	}
}

func (f *fakeEngine) Ready() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.notReady
}

func (f *fakeEngine) Confirm(pk, dn string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := device{pk, dn}
	f.confirms = append(f.confirms, d)
	t, known := f.tasks[d]
	switch {
	case !known:
		return fleet.ErrNoSuchDevice
	case t == nil || t.State != otav1.TaskConfirm:
		return fleet.ErrNoTask
	}
	t.State = otav1.TaskQueued
	return nil
}

func (f *fakeEngine) CancelDevice(pk, dn string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := device{pk, dn}
	f.cancels = append(f.cancels, d)
	t, known := f.tasks[d]
	switch {
	case !known:
		return fleet.ErrNoSuchDevice
	case t == nil || !t.State.Active():
		return fleet.ErrNoTask
	}
	t.State, t.Reason, t.Message = otav1.TaskCanceled, "Canceled", "canceled in the app"
	return nil
}

func (f *fakeEngine) DeviceTasks(pk, dn string) ([]fleet.DeviceTask, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, known := f.tasks[device{pk, dn}]
	if !known {
		return nil, false
	}
	if t == nil {
		return nil, true
	}
	return []fleet.DeviceTask{*t}, true
}

func (f *fakeEngine) Notify(n fleet.Notifier, tasks bool) func() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if tasks {
		f.notifier = n
	}
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.notifier = nil
	}
}
