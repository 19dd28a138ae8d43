package fleet

import (
	"errors"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// Errors of the calls the app API makes.
var (
	ErrNoSuchDevice = errors.New("no such device")
	ErrNoTask       = errors.New("the device has no upgrade waiting for this action")
)

// Confirm moves a device's task from CONFIRM to QUEUED: the user agreed in
// the app, so the engine may push it.
func (e *Engine) Confirm(productKey, device string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, err := e.activeTask(productKey, device)
	if err != nil {
		return err
	}
	if t.state != otav1.TaskConfirm {
		return ErrNoTask
	}
	e.setState(t, otav1.TaskQueued, e.now())
	t.c.enqueue(t)
	e.kick()
	return nil
}

// CancelDevice cancels a device's active task, in any state not final.
func (e *Engine) CancelDevice(productKey, device string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, err := e.activeTask(productKey, device)
	if err != nil {
		return err
	}
	e.finish(t, otav1.TaskCanceled, reasonCanceled, "canceled in the app", e.now())
	return nil
}

func (e *Engine) activeTask(productKey, device string) (*task, error) {
	pr := e.products[productKey]
	if pr == nil {
		return nil, ErrNoSuchDevice
	}
	d := pr.devices[device]
	if d == nil {
		return nil, ErrNoSuchDevice
	}
	if d.task == nil {
		return nil, ErrNoTask
	}
	return d.task, nil
}
