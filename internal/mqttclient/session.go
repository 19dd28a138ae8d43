package mqttclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/otafleet/otafleet/internal/mqttpacket"
)

// Sizes and limits of one connection.
const (
	readBuffer = 64 << 10
	maxPacket  = 16 << 20 // a larger packet from the broker breaks the connection
	// maxPendingWrite bounds the bytes waiting to be written; a publisher
	// waits beyond it (acknowledgements never do).
	maxPendingWrite = 1 << 20
	// gatherWrites is how long the writer lets a small batch grow before
	// writing it: a write syscall costs more than many packets take to
	// arrive in a burst, and MQTT does not notice a millisecond.
	gatherWrites = time.Millisecond
	gatherBytes  = 32 << 10
	gatherReads  = time.Millisecond
	// pingTimeout is how long a PINGRESP may take at most before the
	// connection is taken for dead, as in paho.
	pingTimeout = 10 * time.Second
)

// session is one network connection: the reader runs on the client's run
// goroutine, the writer on its own.
type session struct {
	c  *Client
	nc net.Conn
	r  *mqttpacket.Reader

	mu       sync.Mutex
	room     *sync.Cond // publishers wait on it for buffer room or a free packet id
	out      []byte     // waiting for the writer
	pending  map[uint16]*waiter
	nextID   uint16
	closing  bool  // no more sends; the writer flushes and closes
	err      error // why the session ended
	pingSent time.Time

	lastWrite  atomic.Int64 // unix nanoseconds
	wake       chan struct{}
	writerDone chan struct{}
	closeOnce  sync.Once
}

func newSession(c *Client, nc net.Conn) *session {
	s := &session{c: c, nc: nc, r: mqttpacket.NewReader(nc, readBuffer, maxPacket), pending: map[uint16]*waiter{},
		wake: make(chan struct{}, 1), writerDone: make(chan struct{})}
	s.room = sync.NewCond(&s.mu)
	return s
}

// handshake sends CONNECT and reads the CONNACK, within ctx's deadline.
func (s *session) handshake(ctx context.Context) error {
	if dl, ok := ctx.Deadline(); ok {
		_ = s.nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	o := &s.c.o
	b, err := mqttpacket.AppendConnect(nil, mqttpacket.ConnectOptions{ClientID: o.ClientID, Username: o.Username,
		Password: o.Password, CleanSession: true, KeepAlive: uint16(min(o.KeepAlive/time.Second, 65535))})
	if err != nil {
		return err
	}
	if _, err := s.nc.Write(b); err != nil {
		return err
	}
	p, err := s.r.Next()
	switch {
	case err != nil:
		return err
	case p.Type != mqttpacket.Connack:
		return fmt.Errorf("packet type %d before CONNACK", p.Type)
	case p.ReturnCode != 0:
		return fmt.Errorf("connection refused, return code %d", p.ReturnCode)
	}
	s.lastWrite.Store(time.Now().UnixNano())
	return s.nc.SetDeadline(time.Time{})
}

// readLoop reads and dispatches packets until the connection fails.
func (s *session) readLoop() error {
	for {
		if s.r.Buffered() == 0 {
			// Let packets gather before the next read, as the writer does:
			// one read and one wake-up for a burst instead of one each.
			time.Sleep(gatherReads)
		}
		p, err := s.r.Next()
		if err != nil {
			return err
		}
		switch p.Type {
		case mqttpacket.Publish:
			if p.QoS == 2 {
				return errors.New("a QoS 2 message, though every subscription asked QoS 1")
			}
			s.c.o.OnMessage(p.Topic, p.Payload)
			if p.QoS == 1 {
				s.ack(p.ID)
			}
		case mqttpacket.Puback:
			s.complete(p.ID, nil)
		case mqttpacket.Suback:
			var err error
			for _, code := range p.Codes {
				if code == mqttpacket.SubackFailure {
					err = ErrRefused
				}
			}
			s.complete(p.ID, err)
		case mqttpacket.Pingresp:
			s.mu.Lock()
			s.pingSent = time.Time{}
			s.mu.Unlock()
		}
	}
}

// send registers a waiter under a free packet id and appends the packet
// encode makes, waiting while the buffer is full or every id is taken.
func (s *session) send(encode func(b []byte, id uint16) ([]byte, error)) (*waiter, error) {
	s.mu.Lock()
	for (len(s.out) >= maxPendingWrite || len(s.pending) >= 0xffff) && !s.closing {
		s.room.Wait()
	}
	if s.closing {
		s.mu.Unlock()
		return nil, ErrNotConnected
	}
	id := s.freeID()
	out, err := encode(s.out, id)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	w := getWaiter()
	w.deadline = time.Now().Add(s.c.o.AckTimeout)
	s.pending[id], s.out = w, out
	s.mu.Unlock()
	s.signal()
	return w, nil
}

// freeID returns the next packet id not in flight; the caller holds mu and
// made sure one is free.
func (s *session) freeID() uint16 {
	for {
		s.nextID++
		if _, busy := s.pending[s.nextID]; s.nextID != 0 && !busy {
			return s.nextID
		}
	}
}

// ack queues a PUBACK; it never waits, so the reader never blocks on the
// writer.
func (s *session) ack(id uint16) {
	s.mu.Lock()
	if !s.closing {
		s.out = mqttpacket.AppendPuback(s.out, id)
	}
	s.mu.Unlock()
	s.signal()
}

func (s *session) complete(id uint16, err error) {
	s.mu.Lock()
	w := s.pending[id]
	delete(s.pending, id)
	s.room.Signal()
	s.mu.Unlock()
	if w != nil {
		w.done <- err
	}
}

func (s *session) signal() {
	select {
	case s.wake <- struct{}{}:
	default: // the writer is awake already and will see it
	}
}

// close ends the session: with goodbye, the writer first sends DISCONNECT
// and what is queued before it. Waiters fail with ErrConnectionLost.
func (s *session) close(goodbye bool) {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		if goodbye {
			s.out = mqttpacket.AppendDisconnect(s.out)
		}
		s.closing = true
		s.failPending(ErrConnectionLost)
		s.room.Broadcast()
		s.mu.Unlock()
		s.signal()
		if goodbye {
			// Cut short a write stuck on a broker that does not read.
			_ = s.nc.SetWriteDeadline(time.Now().Add(time.Second))
		} else {
			_ = s.nc.Close()
		}
	})
}

// failPending fails every waiter; the caller holds mu.
func (s *session) failPending(err error) {
	for id, w := range s.pending {
		delete(s.pending, id)
		w.done <- err
	}
}
