package mqtt

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// Writes gathered by the buffered connection arrive complete and in order,
// Close sends what is pending, and a write after Close fails.
func TestBufferedConnWritesInOrderAndFlushesOnClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		b, _ := io.ReadAll(c)
		got <- b
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := newBufferedConn(raw)
	var want bytes.Buffer
	for i := range 5000 { // more than maxPendingWrite in all: writers wait for room
		p := bytes.Repeat([]byte{byte(i)}, 300)
		want.Write(p)
		if n, err := c.Write(p); n != len(p) || err != nil {
			t.Fatalf("write %d: %d, %v", i, n, err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("received %d bytes, want %d in order", len(b), want.Len())
	}
	if _, err := c.Write([]byte("late")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

// A failed write surfaces on a later Write instead of being lost silently.
func TestBufferedConnReportsWriteErrors(t *testing.T) {
	a, b := net.Pipe()
	c := newBufferedConn(a)
	_ = b.Close() // the peer is gone: the writer's next write fails
	var err error
	for deadline := time.Now().Add(5 * time.Second); err == nil && time.Now().Before(deadline); {
		if _, err = c.Write([]byte("x")); err == nil {
			time.Sleep(time.Millisecond) // poll until the writer has tried
		}
	}
	_ = c.Close()
	if err == nil || errors.Is(err, net.ErrClosed) {
		t.Fatalf("writes to a closed peer: %v, want the write error", err)
	}
}
