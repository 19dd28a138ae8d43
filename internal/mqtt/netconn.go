package mqtt

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// maxPendingWrite bounds the bytes waiting to be written on one
// connection; a writer waits beyond it.
const maxPendingWrite = 1 << 20

// gatherWrites is how long the writer lets packets gather before a write
// of less than gatherBytes: a write syscall costs more than many packets
// take to arrive in a burst, and MQTT does not notice a millisecond.
const (
	gatherWrites = time.Millisecond
	gatherBytes  = 32 << 10
)

// UseBufferedConnections makes o open tcp:// and ssl:// broker
// connections through OpenBuffered (websocket URLs keep paho's own). paho
// reads a packet in several small reads and writes every packet with its
// own syscall: at tens of thousands of messages a second those syscalls,
// not MQTT, were most of the CPU of the operator and of the simulator.
func UseBufferedConnections(o *paho.ClientOptions) {
	for _, u := range o.Servers {
		switch u.Scheme {
		case "tcp", "mqtt", "ssl", "tls", "mqtts", "tcps":
		default:
			return
		}
	}
	o.SetCustomOpenConnectionFn(OpenBuffered)
}

// OpenBuffered dials the broker and returns a connection whose reads go
// through a buffer and whose writes are coalesced: a write lands in a
// buffer that one goroutine writes out whenever it is free, so a burst of
// packets costs one syscall, and a lone packet goes out at once.
func OpenBuffered(uri *url.URL, o paho.ClientOptions) (net.Conn, error) {
	d := o.Dialer
	if d == nil {
		d = &net.Dialer{Timeout: o.ConnectTimeout}
	}
	var c net.Conn
	var err error
	switch uri.Scheme {
	case "tcp", "mqtt":
		c, err = d.Dial("tcp", uri.Host)
	case "ssl", "tls", "mqtts", "tcps":
		c, err = tls.DialWithDialer(d, "tcp", uri.Host, o.TLSConfig)
	default:
		return nil, fmt.Errorf("buffered connections do not support %q", uri.Scheme)
	}
	if err != nil {
		return nil, err
	}
	return newBufferedConn(c), nil
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader

	mu     sync.Mutex
	room   *sync.Cond // a writer waits on it while the buffer is full
	buf    []byte
	err    error
	closed bool

	wake chan struct{}
	done chan struct{} // closed when the writer goroutine is gone
	once sync.Once
}

func newBufferedConn(c net.Conn) *bufferedConn {
	b := &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, 64<<10), wake: make(chan struct{}, 1), done: make(chan struct{})}
	b.room = sync.NewCond(&b.mu)
	go b.writeLoop()
	return b
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *bufferedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	for len(c.buf) >= maxPendingWrite && c.err == nil && !c.closed {
		c.room.Wait()
	}
	switch {
	case c.err != nil:
		err := c.err
		c.mu.Unlock()
		return 0, err
	case c.closed:
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	c.buf = append(c.buf, p...)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default: // the writer is awake already and will see it
	}
	return len(p), nil
}

// writeLoop writes out what accumulated, until the connection is closed
// and everything written before that went out, or a write failed.
func (c *bufferedConn) writeLoop() {
	defer close(c.done)
	var out []byte
	for range c.wake {
		c.mu.Lock()
		small := len(c.buf) < gatherBytes && !c.closed
		c.mu.Unlock()
		if small {
			time.Sleep(gatherWrites)
		}
		c.mu.Lock()
		out, c.buf = c.buf, out[:0]
		closed := c.closed
		c.room.Broadcast()
		c.mu.Unlock()
		if len(out) > 0 {
			if _, err := c.Conn.Write(out); err != nil {
				c.mu.Lock()
				c.err = err
				c.room.Broadcast()
				c.mu.Unlock()
				return
			}
		}
		if closed {
			return
		}
	}
}

// Close writes what is pending (a DISCONNECT, typically; one second at
// most), then closes the connection.
func (c *bufferedConn) Close() error {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.room.Broadcast()
		c.mu.Unlock()
		select {
		case c.wake <- struct{}{}:
		default:
		}
		_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		select {
		case <-c.done:
		case <-time.After(time.Second):
		}
	})
	return c.Conn.Close()
}
