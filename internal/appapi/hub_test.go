package appapi

import (
	"testing"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/fleet"
)

// followers counts the streams following a device.
func (h *hub) followers(d device) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.byDevice[d])
}

func taskOf(name string, step int32) fleet.DeviceTask {
	d, _ := parseDevice(name)
	return fleet.DeviceTask{ProductKey: d.pk, Device: d.dn, State: otav1.TaskInProgress, Step: step}
}

func TestHubFiltersAndKeepsOrder(t *testing.T) {
	h := newHub(16, nil)
	a := h.subscribe([]device{{"pk", "a"}})
	ab := h.subscribe([]device{{"pk", "a"}, {"pk", "b"}})
	for i := range int32(5) {
		h.publish(taskOf("pk/a", i))
		h.publish(taskOf("pk/b", i))
		h.publish(taskOf("pk/c", i))
	}
	if len(a.ch) != 5 || len(ab.ch) != 10 {
		t.Fatalf("a got %d events, ab %d; want 5 and 10", len(a.ch), len(ab.ch))
	}
	var last uint64
	for i := range int32(5) {
		ev := <-a.ch
		if ev.task.Device != "a" || ev.task.Step != i || ev.seq <= last {
			t.Fatalf("event %d: %+v after seq %d", i, ev, last)
		}
		last = ev.seq
	}
	h.unsubscribe(ab)
	h.publish(taskOf("pk/b", 9))
	if len(ab.ch) != 10 || h.followers(device{"pk", "b"}) != 0 || h.followers(device{"pk", "a"}) != 1 {
		t.Fatal("an unsubscribed stream still follows")
	}
}

// TestHubEndsSlowStreams checks that publish never blocks: a full buffer
// closes the stream, counts it, and leaves the others alone.
func TestHubEndsSlowStreams(t *testing.T) {
	overflows := 0
	h := newHub(2, func() { overflows++ })
	slow := h.subscribe([]device{{"pk", "a"}})
	other := h.subscribe([]device{{"pk", "b"}})
	for i := range int32(10) {
		h.publish(taskOf("pk/a", i)) // would block forever if publish could
	}
	h.publish(taskOf("pk/b", 0))
	if overflows != 1 {
		t.Fatalf("%d overflows, want 1", overflows)
	}
	// What was buffered before the gap is kept, in order, then the end.
	for want := range int32(2) {
		if ev, ok := <-slow.ch; !ok || ev.task.Step != want {
			t.Fatalf("event %+v ok=%v, want step %d", ev, ok, want)
		}
	}
	if _, ok := <-slow.ch; ok {
		t.Fatal("the slow stream was not closed")
	}
	if h.followers(device{"pk", "a"}) != 0 || len(other.ch) != 1 {
		t.Fatal("the overflow touched the wrong streams")
	}
	h.unsubscribe(slow) // after an overflow: must not panic
}
