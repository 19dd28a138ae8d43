package fleet

import (
	"errors"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/rollout"
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
	defer e.unlock()
	t, err := e.activeTask(productKey, device)
	if err != nil {
		return err
	}
	if t.state != otav1.TaskConfirm {
		return ErrNoTask
	}
	e.setState(t, otav1.TaskQueued, e.now())
	t.c.enqueueAgain(t)
	e.kick()
	return nil
}

// CancelDevice cancels a device's active task, in any state not final.
func (e *Engine) CancelDevice(productKey, device string) error {
	e.mu.Lock()
	defer e.unlock()
	t, err := e.activeTask(productKey, device)
	if err != nil {
		return err
	}
	if t.state == otav1.TaskSoaking {
		// The device already runs the new version: there is nothing left
		// to cancel, only a soak to watch.
		return ErrNoTask
	}
	e.finish(t, otav1.TaskCanceled, rollout.ReasonCanceled, "canceled in the app", e.now())
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

// DeviceTask is what the app sees of one device's upgrade.
type DeviceTask struct {
	ProductKey  string
	Device      string
	Campaign    otav1.CampaignReference
	Namespace   string
	Module      string
	FromVersion string
	Target      string
	State       otav1.TaskState
	Step        int32
	Reason      string
	Message     string
	Confirm     bool // the campaign asks the user to confirm
	Size        int64
	SignMethod  otav1.SignMethod
	Sign        string
	Current     string // the module version the device reports now
}

// DeviceTasks returns the task of a device that is active now, or, when
// none is, its most recent task in any campaign (so the app can show a
// finished upgrade). ok is false for an unknown device.
func (e *Engine) DeviceTasks(productKey, device string) (tasks []DeviceTask, ok bool) {
	e.mu.Lock()
	defer e.unlock()
	pr := e.products[productKey]
	if pr == nil {
		return nil, false
	}
	d := pr.devices[device]
	if d == nil {
		return nil, false
	}
	if d.task != nil {
		return []DeviceTask{taskView(d.task)}, true
	}
	var latest *task
	for c := range pr.campaigns {
		if t := c.tasks[device]; t != nil && (latest == nil || t.updated > latest.updated) {
			latest = t
		}
	}
	if latest != nil {
		tasks = append(tasks, taskView(latest))
	}
	return tasks, true
}

func taskView(t *task) DeviceTask {
	c := t.c
	cur, _ := t.dev.version(c.spec.Module)
	sign := c.spec.Image.MD5
	if c.spec.Image.SignMethod == otav1.SignMethodSHA256 {
		sign = c.spec.Image.SHA256
	}
	return DeviceTask{
		ProductKey: c.spec.ProductKey, Device: t.dev.name, Campaign: c.spec.Ref, Namespace: c.key.namespace,
		Module: c.spec.Module, FromVersion: t.from, Target: c.spec.Target, State: t.state, Step: t.step,
		Reason: t.reason, Message: t.message, Confirm: c.spec.Confirm, Size: c.spec.Image.Size,
		SignMethod: c.spec.Image.SignMethod, Sign: sign, Current: cur,
	}
}
