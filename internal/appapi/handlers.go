package appapi

import (
	"errors"
	"net/http"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/fleet"
	"github.com/otafleet/otafleet/internal/protocol"
)

// DeviceRef names a device in requests and answers.
type DeviceRef struct {
	ProductKey string `json:"productKey"`
	DeviceName string `json:"deviceName"`
}

// DevicesRequest is the body of the list calls (optional: no devices means
// all of the caller's) and of confirm (1..20 devices).
type DevicesRequest struct {
	Devices []DeviceRef `json:"devices,omitempty"`
}

// Statuses of firmware/file/get, as the guide names them.
const (
	StatusToBeUpgraded = "TO_BE_UPGRADED"
	StatusSucceeded    = "SUCCEEDED"
)

// FirmwareItem is one pending (or just succeeded) upgrade of a device.
type FirmwareItem struct {
	DeviceRef
	Module         string          `json:"module"`
	CurrentVersion string          `json:"currentVersion,omitempty"`
	TargetVersion  string          `json:"targetVersion"`
	Size           int64           `json:"size"`
	SignMethod     string          `json:"signMethod"`
	Sign           string          `json:"sign"`
	Status         string          `json:"status"`
	State          otav1.TaskState `json:"state"`
	NeedConfirm    bool            `json:"needConfirm"`
	ReadOnly       bool            `json:"readOnly"`
}

// ProgressItem is a device's upgrade progress: in progress/list, progress/get,
// devices/list, cancel and the stream.
type ProgressItem struct {
	DeviceRef
	Module         string          `json:"module"`
	CurrentVersion string          `json:"currentVersion,omitempty"`
	TargetVersion  string          `json:"targetVersion"`
	State          otav1.TaskState `json:"state"`
	Step           int32           `json:"step"`
	Desc           string          `json:"desc,omitempty"`
	Reason         string          `json:"reason,omitempty"`
	ReadOnly       bool            `json:"readOnly"`
}

// ConfirmItem is the result of confirming one device: code 200 when its
// upgrade is confirmed (now or before), 404 when the upgrade went away
// between the check and the confirmation.
type ConfirmItem struct {
	DeviceRef
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// Items is the data of the list answers.
type Items[T any] struct {
	Items []T `json:"items"`
}

func progressOf(t fleet.DeviceTask, a access) ProgressItem {
	return ProgressItem{
		DeviceRef: DeviceRef{t.ProductKey, t.Device}, Module: t.Module, CurrentVersion: t.Current,
		TargetVersion: t.Target, State: t.State, Step: t.Step, Desc: t.Message, Reason: t.Reason,
		ReadOnly: a != accessAdmin,
	}
}

// resolve checks every device of a request against the caller's rights
// before anything is done, so that one foreign or read-only device refuses
// the whole request. No devices means all of the caller's.
func resolve(c *caller, refs []DeviceRef, need access) ([]device, error) {
	if len(refs) == 0 {
		return c.order, nil
	}
	out := make([]device, 0, len(refs))
	seen := make(map[device]bool, len(refs))
	for _, r := range refs {
		if !protocol.ValidSegment(r.ProductKey) || !protocol.ValidSegment(r.DeviceName) {
			return nil, errorf(http.StatusBadRequest, "invalid device %q/%q", r.ProductKey, r.DeviceName)
		}
		d := device{r.ProductKey, r.DeviceName}
		switch a := c.can(d); {
		case a == accessNone:
			// The same answer whether or not the device exists: no oracle.
			return nil, errorf(http.StatusForbidden, "device %s is not bound to this user", d)
		case a < need:
			return nil, errorf(http.StatusForbidden, "device %s is shared with this user read-only", d)
		}
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out, nil
}

// task returns the device's active task, or its latest one.
func (s *Server) task(d device) (fleet.DeviceTask, bool) {
	ts, ok := s.eng.DeviceTasks(d.pk, d.dn)
	if !ok || len(ts) == 0 {
		return fleet.DeviceTask{}, false
	}
	return ts[0], true
}

func (s *Server) firmwareGet(r *http.Request, c *caller) (any, error) {
	var req DevicesRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	devs, err := resolve(c, req.Devices, accessRead)
	if err != nil {
		return nil, err
	}
	out := Items[FirmwareItem]{Items: []FirmwareItem{}}
	for _, d := range devs {
		t, ok := s.task(d)
		if !ok {
			continue
		}
		status := StatusToBeUpgraded
		switch {
		case t.State == otav1.TaskSucceeded, t.State == otav1.TaskSoaking:
			// A soaking device runs the new version: for its user the
			// upgrade is done; the soak is the operator's watch.
			status = StatusSucceeded
		case !t.State.Active():
			continue
		}
		out.Items = append(out.Items, FirmwareItem{
			DeviceRef: DeviceRef{d.pk, d.dn}, Module: t.Module, CurrentVersion: t.Current,
			TargetVersion: t.Target, Size: t.Size, SignMethod: string(t.SignMethod), Sign: t.Sign,
			Status: status, State: t.State, NeedConfirm: t.State == otav1.TaskConfirm,
			ReadOnly: c.can(d) != accessAdmin,
		})
	}
	return out, nil
}

func (s *Server) devicesList(r *http.Request, c *caller) (any, error) {
	return s.progress(r, c, true)
}

func (s *Server) progressList(r *http.Request, c *caller) (any, error) {
	return s.progress(r, c, false)
}

func (s *Server) progress(r *http.Request, c *caller, activeOnly bool) (any, error) {
	var req DevicesRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	devs, err := resolve(c, req.Devices, accessRead)
	if err != nil {
		return nil, err
	}
	out := Items[ProgressItem]{Items: []ProgressItem{}}
	for _, d := range devs {
		if t, ok := s.task(d); ok && (!activeOnly || t.State.Active()) {
			out.Items = append(out.Items, progressOf(t, c.can(d)))
		}
	}
	return out, nil
}

// one decodes a request naming one device and checks the caller's right.
func one(r *http.Request, c *caller, need access) (device, error) {
	var req DeviceRef
	if err := decode(r, &req); err != nil {
		return device{}, err
	}
	devs, err := resolve(c, []DeviceRef{req}, need)
	if err != nil {
		return device{}, err
	}
	return devs[0], nil
}

func (s *Server) progressGet(r *http.Request, c *caller) (any, error) {
	d, err := one(r, c, accessRead)
	if err != nil {
		return nil, err
	}
	t, ok := s.task(d)
	if !ok {
		return nil, errorf(http.StatusNotFound, "device %s has no upgrade", d)
	}
	return progressOf(t, c.can(d)), nil
}

func (s *Server) cancel(r *http.Request, c *caller) (any, error) {
	d, err := one(r, c, accessAdmin)
	if err != nil {
		return nil, err
	}
	if err := s.eng.CancelDevice(d.pk, d.dn); err != nil {
		if errors.Is(err, fleet.ErrNoSuchDevice) || errors.Is(err, fleet.ErrNoTask) {
			return nil, errorf(http.StatusNotFound, "device %s has no upgrade to cancel", d)
		}
		return nil, err
	}
	t, ok := s.task(d)
	if !ok {
		return nil, errorf(http.StatusNotFound, "device %s has no upgrade", d)
	}
	return progressOf(t, accessAdmin), nil
}

func (s *Server) confirm(r *http.Request, c *caller) (any, error) {
	var req DevicesRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if n := len(req.Devices); n == 0 || n > MaxConfirmDevices {
		return nil, errorf(http.StatusBadRequest, "a confirm names 1 to %d devices, not %d", MaxConfirmDevices, n)
	}
	devs, err := resolve(c, req.Devices, accessAdmin)
	if err != nil {
		return nil, err
	}
	// Every device must have an upgrade to confirm before any is
	// confirmed. One confirmed already counts: apps retry.
	waiting := make([]bool, len(devs))
	for i, d := range devs {
		t, ok := s.task(d)
		if !ok || !t.State.Active() || !t.Confirm {
			return nil, errorf(http.StatusNotFound, "device %s has no upgrade waiting for confirmation", d)
		}
		waiting[i] = t.State == otav1.TaskConfirm
	}
	out := Items[ConfirmItem]{Items: make([]ConfirmItem, 0, len(devs))}
	for i, d := range devs {
		item := ConfirmItem{DeviceRef: DeviceRef{d.pk, d.dn}, Code: http.StatusOK, Message: "confirmed"}
		if !waiting[i] {
			item.Message = "already confirmed"
		} else if err := s.eng.Confirm(d.pk, d.dn); err != nil {
			// The task changed since the check (canceled, say).
			item.Code, item.Message = http.StatusNotFound, "no upgrade waiting for confirmation"
		}
		out.Items = append(out.Items, item)
	}
	return out, nil
}
