package appapi

import (
	"sync"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/fleet"
)

// event is one change of a device task, numbered in the engine's order.
type event struct {
	seq  uint64
	task fleet.DeviceTask
}

// subscriber is one progress stream: the devices it follows and a bounded
// buffer of their events. The hub closes ch, the only way it is ever
// closed, when the buffer overflowed.
type subscriber struct {
	devices []device
	ch      chan event
}

// hub fans the engine's task changes out to the streams following the
// devices. It is the engine's notifier: TaskChanged runs on every task
// change of every device, so it never blocks and costs one map lookup when
// nobody follows the device.
type hub struct {
	buffer     int
	onOverflow func()

	mu       sync.Mutex
	seq      uint64
	byDevice map[device]map[*subscriber]struct{}
}

func newHub(buffer int, onOverflow func()) *hub {
	return &hub{buffer: buffer, onOverflow: onOverflow, byDevice: map[device]map[*subscriber]struct{}{}}
}

// CampaignChanged implements fleet.Notifier; streams follow devices only.
func (h *hub) CampaignChanged(string, otav1.CampaignReference) {}

// TaskChanged implements fleet.Notifier.
func (h *hub) TaskChanged(t fleet.DeviceTask) { h.publish(t) }

// publish hands a task change to the streams that follow its device.
func (h *hub) publish(t fleet.DeviceTask) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	subs := h.byDevice[device{t.ProductKey, t.Device}]
	if len(subs) == 0 {
		return
	}
	ev := event{seq: h.seq, task: t}
	for s := range subs {
		select {
		case s.ch <- ev:
		default:
			// A stream that cannot keep up is ended, not thinned out: a
			// client missing some changes would show a wrong state with no
			// way to know it. It reconnects and starts from a snapshot.
			h.removeLocked(s)
			close(s.ch)
			if h.onOverflow != nil {
				h.onOverflow()
			}
		}
	}
}

// subscribe starts following devices.
func (h *hub) subscribe(devices []device) *subscriber {
	s := &subscriber{devices: devices, ch: make(chan event, h.buffer)}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, d := range devices {
		subs := h.byDevice[d]
		if subs == nil {
			subs = map[*subscriber]struct{}{}
			h.byDevice[d] = subs
		}
		subs[s] = struct{}{}
	}
	return s
}

// unsubscribe stops a stream; it is safe after an overflow.
func (h *hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removeLocked(s)
}

func (h *hub) removeLocked(s *subscriber) {
	for _, d := range s.devices {
		subs := h.byDevice[d]
		delete(subs, s)
		if len(subs) == 0 {
			delete(h.byDevice, d)
		}
	}
}
