package fleet

import (
	"context"
	"sync"
)

// durability tracks which applied changes the API server holds. Every
// batch of device messages and every tick that changed what a slice
// records takes the next sequence number; a flush that writes every slice
// dirty at its start, without an error, makes every sequence up to that
// start durable. The MQTT gateway acknowledges a device's message only
// once its sequence is durable, and pushes go out only once the NOTIFIED
// state they cause is durable: a crash then forgets nothing a device was
// told or a device told us (docs/architecture.md, "Crash anywhere").
type durability struct {
	// seq is the last sequence taken; marks counts dirty marks, so that a
	// batch that changed nothing takes none. Both under the engine's lock.
	seq   uint64
	marks uint64

	mu      sync.Mutex
	durable uint64
	// advanced is closed and replaced whenever durable moves.
	advanced chan struct{}
	// held are pushes waiting for their NOTIFIED state to be written.
	held []heldPushes
}

type heldPushes struct {
	seq uint64
	out []outgoing
}

// take returns a new sequence number if dirty marks were made since
// marksBefore, else 0 (nothing to wait for). Called with e.mu held.
func (d *durability) take(marksBefore uint64) uint64 {
	if d.marks == marksBefore {
		return 0
	}
	d.seq++
	return d.seq
}

// advance records that every sequence up to seq is durable and returns
// the held pushes that may go out now.
func (d *durability) advance(seq uint64) []outgoing {
	d.mu.Lock()
	defer d.mu.Unlock()
	if seq <= d.durable {
		return nil
	}
	d.durable = seq
	if d.advanced != nil {
		close(d.advanced)
		d.advanced = nil
	}
	var out []outgoing
	i := 0
	for ; i < len(d.held) && d.held[i].seq <= seq; i++ {
		out = append(out, d.held[i].out...)
	}
	d.held = d.held[i:]
	return out
}

// hold keeps pushes until seq is durable; they are returned at once when
// it already is.
func (d *durability) hold(seq uint64, out []outgoing) []outgoing {
	d.mu.Lock()
	defer d.mu.Unlock()
	if seq <= d.durable {
		return out
	}
	d.held = append(d.held, heldPushes{seq: seq, out: out})
	return nil
}

// wait blocks until seq is durable or ctx ends.
func (d *durability) wait(ctx context.Context, seq uint64) error {
	for {
		d.mu.Lock()
		if seq <= d.durable {
			d.mu.Unlock()
			return nil
		}
		if d.advanced == nil {
			d.advanced = make(chan struct{})
		}
		ch := d.advanced
		d.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Durable returns a function that blocks until the effects of the
// changes numbered seq are written; nil when seq is 0 (nothing changed).
func (e *Engine) durableFunc(seq uint64) func(context.Context) error {
	if seq == 0 {
		return nil
	}
	return func(ctx context.Context) error { return e.durable.wait(ctx, seq) }
}
