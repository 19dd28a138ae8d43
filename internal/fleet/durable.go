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
	// waiting counts the messages (device reports and held pushes) whose
	// sequence is not durable yet; pending says how many each sequence
	// holds. Unacknowledged reports fill the broker's in-flight window
	// (Mochi drops past it), so a large backlog makes the next flush
	// come sooner than the write rate alone would (urgent).
	waiting int
	pending []seqCount
	urgent  chan struct{}
}

type seqCount struct {
	seq uint64
	n   int
}

// UrgentBacklog is how many messages may wait for their effect to be
// written before the flush loop stops stretching its interval to save
// writes: well within the in-flight windows docs/brokers.md asks for.
const UrgentBacklog = 4096

// waitFor records that n messages wait for seq.
func (d *durability) waitFor(seq uint64, n int) {
	if seq == 0 || n == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if seq > d.durable {
		d.addWaiting(seq, n)
	}
}

// addWaiting counts n messages waiting for seq; called with d.mu held.
func (d *durability) addWaiting(seq uint64, n int) {
	d.pending = append(d.pending, seqCount{seq, n})
	d.waiting += n
	if d.waiting >= UrgentBacklog && d.urgent != nil {
		select {
		case d.urgent <- struct{}{}:
		default:
		}
	}
}

// backlog is how many messages wait for their effect to be written.
func (d *durability) backlog() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.waiting
}

type heldPushes struct {
	seq uint64
	out []outgoing
}

// next is the sequence the changes marked now will take: the next take,
// whether in this hold of the engine's lock or a later one. Called with
// e.mu held.
func (d *durability) next() uint64 { return d.seq + 1 }

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
	// Sequences are taken under the engine's lock but recorded here after
	// it, so the lists are not quite in order: filter them whole.
	keep := d.pending[:0]
	for _, p := range d.pending {
		if p.seq <= seq {
			d.waiting -= p.n
		} else {
			keep = append(keep, p)
		}
	}
	d.pending = keep
	if d.advanced != nil {
		close(d.advanced)
		d.advanced = nil
	}
	var out []outgoing
	held := d.held[:0]
	for _, h := range d.held {
		if h.seq <= seq {
			out = append(out, h.out...)
		} else {
			held = append(held, h)
		}
	}
	d.held = held
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
	d.addWaiting(seq, len(out))
	return nil
}

// isDurable reports whether seq is durable.
func (d *durability) isDurable(seq uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return seq <= d.durable
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
	if seq == 0 || e.durable.isDurable(seq) {
		return nil
	}
	return func(ctx context.Context) error { return e.durable.wait(ctx, seq) }
}
