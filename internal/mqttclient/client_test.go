package mqttclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otafleet/otafleet/internal/mqttpacket"
	"github.com/otafleet/otafleet/internal/testserver"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func startMochi(t *testing.T, addr string) *testserver.Mochi {
	t.Helper()
	b, err := testserver.StartMochi(testserver.MochiOptions{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Stop() })
	return b
}

// inbox collects messages, for a test to wait on.
type inbox struct {
	mu   sync.Mutex
	msgs map[string][]byte
	more chan struct{}
}

func newInbox() *inbox { return &inbox{msgs: map[string][]byte{}, more: make(chan struct{}, 1)} }

func (in *inbox) add(topic, payload []byte) {
	in.mu.Lock()
	in.msgs[string(topic)] = bytes.Clone(payload) // the arguments alias the reader's buffer
	in.mu.Unlock()
	select {
	case in.more <- struct{}{}:
	default:
	}
}

func (in *inbox) waitFor(t *testing.T, ctx context.Context, n int) map[string][]byte {
	t.Helper()
	for {
		in.mu.Lock()
		got := len(in.msgs)
		in.mu.Unlock()
		if got >= n {
			return in.msgs
		}
		select {
		case <-in.more:
		case <-ctx.Done():
			t.Fatalf("%d of %d messages", got, n)
		}
	}
}

func connect(t *testing.T, ctx context.Context, o Options) *Client {
	t.Helper()
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Disconnect)
	return c
}

func TestPublishAndReceive(t *testing.T) {
	b := startMochi(t, "")
	ctx := testContext(t)
	in := newInbox()
	sub := connect(t, ctx, Options{Broker: b.URL, ClientID: "sub", OnMessage: in.add})
	if err := sub.Subscribe([]string{"t/+", "big"}).Wait(ctx); err != nil {
		t.Fatal(err)
	}
	pub := connect(t, ctx, Options{Broker: b.URL, ClientID: "pub"})
	const n = 3000
	tokens := make([]Token, 0, n)
	for i := range n {
		tokens = append(tokens, pub.Publish(fmt.Sprintf("t/%d", i), []byte(fmt.Sprintf("payload %d", i))))
	}
	big := bytes.Repeat([]byte("0123456789"), 20_000) // larger than the read buffer
	tokens = append(tokens, pub.Publish("big", big))
	for i, tok := range tokens {
		if err := tok.Wait(ctx); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	msgs := in.waitFor(t, ctx, n+1)
	for i := range n {
		if got := string(msgs[fmt.Sprintf("t/%d", i)]); got != fmt.Sprintf("payload %d", i) {
			t.Fatalf("t/%d: %q", i, got)
		}
	}
	if !bytes.Equal(msgs["big"], big) {
		t.Fatalf("the large message arrived with %d bytes, want %d", len(msgs["big"]), len(big))
	}
}

func TestSubscribeRefused(t *testing.T) {
	b := startMochi(t, "")
	ctx := testContext(t)
	c := connect(t, ctx, Options{Broker: b.URL, ClientID: "c"})
	if err := c.Subscribe([]string{"ok/+", "bad/#/filter"}).Wait(ctx); !errors.Is(err, ErrRefused) {
		t.Fatalf("a bad filter: %v, want ErrRefused", err)
	}
}

// TestReconnect restarts the broker: the client notices, reconnects by
// itself, runs OnConnect again (which subscribes anew) and works again.
func TestReconnect(t *testing.T) {
	b := startMochi(t, "")
	ctx := testContext(t)
	in := newInbox()
	connects, lost := make(chan struct{}, 10), make(chan error, 10)
	var c *Client
	// A short ConnectTimeout: Mochi disconnects its clients before it
	// closes its listener, so a reconnection can reach the dying broker
	// and wait for a CONNACK that never comes.
	c, err := New(Options{Broker: b.URL, ClientID: "c", OnMessage: in.add, MaxReconnectInterval: 100 * time.Millisecond,
		ConnectTimeout: time.Second,
		OnConnect: func() {
			_ = c.Subscribe([]string{"t"}).Wait(ctx)
			connects <- struct{}{}
		},
		OnConnectionLost: func(err error) { lost <- err }})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect()
	waitSignal(t, ctx, connects, "first connection")
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	waitSignal(t, ctx, lost, "connection lost")
	if err := c.Publish("t", []byte("x")).Wait(ctx); err == nil {
		t.Fatal("a publish without a broker succeeded")
	}
	b2 := startMochi(t, b.Address)
	waitSignal(t, ctx, connects, "reconnection")
	pub := connect(t, ctx, Options{Broker: b2.URL, ClientID: "pub"})
	if err := pub.Publish("t", []byte("after")).Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if got := in.waitFor(t, ctx, 1)["t"]; string(got) != "after" {
		t.Fatalf("got %q after the restart", got)
	}
}

func waitSignal[T any](t *testing.T, ctx context.Context, ch <-chan T, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-ctx.Done():
		t.Fatalf("no %s", what)
	}
}

func TestDisconnectAndConnectAgain(t *testing.T) {
	b := startMochi(t, "")
	ctx := testContext(t)
	lost := make(chan error, 1)
	c := connect(t, ctx, Options{Broker: b.URL, ClientID: "c", OnConnectionLost: func(err error) { lost <- err }})
	c.Disconnect()
	if c.IsConnected() {
		t.Fatal("connected after Disconnect")
	}
	if err := c.Publish("t", nil).Wait(ctx); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("publish after Disconnect: %v, want ErrNotConnected", err)
	}
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish("t", nil).Wait(ctx); err != nil {
		t.Fatalf("publish after connecting again: %v", err)
	}
	c.Disconnect()
	c.Disconnect() // twice is harmless
	select {
	case err := <-lost:
		t.Fatalf("Disconnect reported as a lost connection: %v", err)
	default:
	}
}

func TestConnectErrors(t *testing.T) {
	ctx := testContext(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there now
	c, err := New(Options{Broker: "tcp://" + addr, ClientID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(ctx); err == nil {
		t.Fatal("connected to a closed port")
	}
	if _, err := New(Options{Broker: "ws://" + addr, ClientID: "c"}); err == nil {
		t.Fatal("a websocket URL was accepted")
	}
	fb := fakeBroker(t, []byte{0x20, 2, 0, 5}) // CONNACK: not authorized
	c, _ = New(Options{Broker: "tcp://" + fb.addr, ClientID: "c"})
	if err := c.Connect(ctx); err == nil || !strings.Contains(err.Error(), "return code 5") {
		t.Fatalf("a refused connection: %v", err)
	}
}

// TestKeepAlive: an idle connection stays up past the broker's keep-alive
// limit (one and a half times the interval) because the client pings.
func TestKeepAlive(t *testing.T) {
	b := startMochi(t, "")
	ctx := testContext(t)
	lost := make(chan error, 1)
	connect(t, ctx, Options{Broker: b.URL, ClientID: "idle", KeepAlive: time.Second, OnConnectionLost: func(err error) { lost <- err }})
	select {
	case err := <-lost:
		t.Fatalf("an idle connection was dropped: %v", err)
	case <-time.After(3 * time.Second): // the property under test is a duration
	}
}

// TestAckAndPingTimeouts uses a broker that accepts the connection and
// then answers nothing: a publish times out, then the unanswered ping
// breaks the connection.
func TestAckAndPingTimeouts(t *testing.T) {
	ctx := testContext(t)
	fb := fakeBroker(t, []byte{0x20, 2, 0, 0})
	lost := make(chan error, 1)
	c := connect(t, ctx, Options{Broker: "tcp://" + fb.addr, ClientID: "c", AckTimeout: 100 * time.Millisecond,
		KeepAlive: 400 * time.Millisecond, OnConnectionLost: func(err error) { lost <- err }})
	if err := c.Publish("t", []byte("x")).Wait(ctx); !errors.Is(err, ErrTimeout) {
		t.Fatalf("a publish never acknowledged: %v, want ErrTimeout", err)
	}
	waitSignal(t, ctx, lost, "lost connection after an unanswered ping")
	if got := <-fb.received; !bytes.Contains(got, mqttpacket.AppendPingreq(nil)) {
		t.Fatalf("the broker received % x, no PINGREQ", got)
	}
}

type fake struct {
	addr     string
	received chan []byte // everything one connection sent, when it ends
}

// fakeBroker accepts connections, answers each with hello and then reads
// and records, never answering.
func fakeBroker(t *testing.T, hello []byte) *fake {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	f := &fake{addr: l.Addr().String(), received: make(chan []byte, 16)}
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				_, _ = nc.Write(hello)
				var all []byte
				buf := make([]byte, 4096)
				for {
					n, err := nc.Read(buf)
					all = append(all, buf[:n]...)
					if err != nil {
						f.received <- all
						return
					}
				}
			}()
		}
	}()
	return f
}
