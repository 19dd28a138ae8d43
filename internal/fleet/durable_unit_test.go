package fleet

import (
	"context"
	"testing"
	"time"
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
