package fleet

import (
	"context"
	"testing"
	"time"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/protocol"
)

func TestDurabilityReleasesInOrderOfSequenceNotOfArrival(t *testing.T) {
	d := durability{urgent: make(chan struct{}, 1)}
	a, b := []outgoing{{device: "a"}}, []outgoing{{device: "b"}}
	// Sequence 2 recorded before sequence 1, as a tick and a batch can.
	if out := d.hold(2, b); out != nil {
		t.Fatal("held pushes went out before their sequence was durable")
	}
	d.hold(1, a)
	d.waitFor(3, 10)
	if got := d.backlog(); got != 12 {
		t.Fatalf("backlog %d, want 12 (two held pushes, ten reports)", got)
	}
	out := d.advance(1)
	if len(out) != 1 || out[0].device != "a" || d.backlog() != 11 {
		t.Fatalf("advance(1) released %+v with backlog %d; want a alone and 11 waiting", out, d.backlog())
	}
	if out := d.advance(3); len(out) != 1 || out[0].device != "b" || d.backlog() != 0 {
		t.Fatalf("advance(3) released %+v with backlog %d; want b and nothing waiting", out, d.backlog())
	}
	if out := d.hold(2, b); len(out) != 1 {
		t.Fatal("a push whose sequence is durable already was held")
	}
}

func TestDurabilityWait(t *testing.T) {
	d := durability{}
	done := make(chan error, 1)
	go func() { done <- d.wait(context.Background(), 2) }()
	d.advance(1)
	select {
	case <-done:
		t.Fatal("wait(2) returned when only 1 was durable")
	case <-time.After(20 * time.Millisecond): // proving a wait needs some time to pass
	}
	d.advance(2)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.wait(ctx, 5); err == nil {
		t.Fatal("wait returned nil for a canceled context before the sequence was durable")
	}
}

func TestUrgentBacklogWakesTheFlushLoop(t *testing.T) {
	d := durability{urgent: make(chan struct{}, 1)}
	d.waitFor(1, UrgentBacklog-1)
	select {
	case <-d.urgent:
		t.Fatal("urgent below the backlog limit")
	default:
	}
	d.waitFor(2, 1)
	select {
	case <-d.urgent:
	default:
		t.Fatal("no urgent signal at the backlog limit")
	}
}

// A report the broker delivers again (after a reconnect) changes nothing
// the second time, but its first delivery's change may not be written
// yet: the second is acknowledged only once it is, or a crash would lose
// the change with no delivery left (found by the chaos harness: failures
// redelivered after a broker restart were acknowledged at once, the
// manager was killed before the flush, and the next one pushed the same
// attempt again).
func TestRedeliveredReportWaitsForTheFirstOnesWrite(t *testing.T) {
	e, names := memEngine(t, 10)
	dev := names[3]
	e.mu.Lock()
	for _, c := range e.campaigns {
		e.setState(c.tasks[dev], otav1.TaskNotified, e.now())
	}
	e.durable.advance(e.durable.take(0)) // what came before is written
	e.mu.Unlock()
	failure := []protocol.Message{{Kind: protocol.KindProgress, ProductKey: "pk", DeviceName: dev, Module: "default", Step: -4}}
	if first := e.HandleBatch(context.Background(), failure); first == nil {
		t.Fatal("a failure is acknowledged before it is written")
	}
	again := e.HandleBatch(context.Background(), failure)
	if again == nil {
		t.Fatal("the failure delivered again is acknowledged before the first delivery's change is written")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := again(ctx); err == nil {
		t.Fatal("the second delivery's wait ended while nothing was written")
	}
	e.durable.advance(e.durable.seq) // the flush wrote the failure
	if err := again(context.Background()); err != nil {
		t.Fatal(err)
	}
	if third := e.HandleBatch(context.Background(), failure); third != nil {
		t.Error("a report whose change is written waits again")
	}
}
