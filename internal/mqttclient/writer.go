package mqttclient

import (
	"errors"
	"sync"
	"time"

	"github.com/otafleet/otafleet/internal/mqttpacket"
)

// writeLoop writes out what accumulated whenever it is woken, and on every
// tick keeps the connection alive and times out acknowledgements. It ends
// when the session closes (after writing what was queued before, a
// DISCONNECT typically) or a write fails.
func (s *session) writeLoop() {
	defer close(s.writerDone)
	tick := time.NewTicker(max(min(s.c.o.KeepAlive, s.c.o.AckTimeout)/4, 10*time.Millisecond))
	defer tick.Stop()
	var buf []byte
	for {
		select {
		case <-s.wake:
		case now := <-tick.C:
			if err := s.tick(now); err != nil {
				s.close(false)
				return
			}
		}
		s.mu.Lock()
		small := len(s.out) < gatherBytes && !s.closing
		s.mu.Unlock()
		if small {
			time.Sleep(gatherWrites) // let a burst gather: one syscall for many packets
		}
		s.mu.Lock()
		buf, s.out = s.out, buf[:0]
		closing := s.closing
		s.room.Broadcast()
		s.mu.Unlock()
		if len(buf) > 0 {
			timeout := s.c.o.AckTimeout
			if closing {
				timeout = time.Second // a goodbye is not worth waiting for
			}
			_ = s.nc.SetWriteDeadline(time.Now().Add(timeout))
			if _, err := s.nc.Write(buf); err != nil {
				s.close(false)
				return
			}
			s.lastWrite.Store(time.Now().UnixNano())
		}
		if closing {
			_ = s.nc.Close() // the reader then ends too
			return
		}
	}
}

var errPingTimeout = errors.New("mqttclient: no PINGRESP in time")

// tick sends a PINGREQ when the connection was quiet for half the
// keep-alive, gives up on a ping unanswered for the keep-alive or
// pingTimeout, and fails the waiters past their deadline. The broker allows
// one and a half keep-alives of silence, but Mochi rounds the half down to
// whole seconds: a 1 s keep-alive gets 1 s.
func (s *session) tick(now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	keepAlive := s.c.o.KeepAlive
	if !s.pingSent.IsZero() && now.Sub(s.pingSent) > min(keepAlive, pingTimeout) {
		return errPingTimeout
	}
	if s.pingSent.IsZero() && now.Sub(time.Unix(0, s.lastWrite.Load())) >= keepAlive/2 {
		s.out = mqttpacket.AppendPingreq(s.out)
		s.pingSent = now
	}
	for id, w := range s.pending {
		if now.After(w.deadline) {
			delete(s.pending, id)
			w.done <- ErrTimeout
		}
	}
	s.room.Broadcast()
	return nil
}

// waiter is one packet waiting for its acknowledgement. done receives
// exactly one result; the channel is buffered so that the reader never
// waits for the publisher.
type waiter struct {
	done     chan error
	deadline time.Time
}

// waiters recycles waiters whose result was received: a publish then
// allocates nothing but its bytes in the shared buffer.
var waiters = sync.Pool{New: func() any { return &waiter{done: make(chan error, 1)} }}

func getWaiter() *waiter  { return waiters.Get().(*waiter) }
func putWaiter(w *waiter) { waiters.Put(w) }
