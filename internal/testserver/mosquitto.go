package testserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// MosquittoOptions tunes StartMosquitto. The zero value suits tests.
type MosquittoOptions struct {
	// Binary is the mosquitto executable; empty uses FindBinaries.
	Binary string
	// Port to listen on (127.0.0.1 only); zero picks a free port. Pass the
	// port of a stopped broker to restart it in place.
	Port int
	// ReadyTimeout bounds the wait for the port; default 20 s.
	ReadyTimeout time.Duration
}

// Mosquitto is a running Mosquitto broker on loopback, anonymous access
// allowed, nothing persisted.
type Mosquitto struct {
	// Address is 127.0.0.1:port; URL is tcp://Address.
	Address string
	URL     string
	Port    int

	cmd      *exec.Cmd
	dir      string
	logs     *tailBufferMQ
	exited   chan struct{}
	stopOnce sync.Once
	stopErr  error
}

// StartMosquitto writes a configuration into a temporary directory, starts
// the broker and returns once its port accepts connections.
func StartMosquitto(ctx context.Context, opts MosquittoOptions) (*Mosquitto, error) {
	bin := opts.Binary
	if bin == "" {
		bins, err := FindBinaries()
		if err != nil {
			return nil, err
		}
		bin = bins.Mosquitto
	}
	attempts := 1
	if opts.Port == 0 {
		attempts = 3 // a free port can be taken between our probe and mosquitto's bind
	}
	for i := 1; ; i++ {
		m, err := startMosquitto(ctx, bin, opts)
		if err == nil || i == attempts || ctx.Err() != nil {
			return m, err
		}
	}
}

func startMosquitto(ctx context.Context, bin string, opts MosquittoOptions) (*Mosquitto, error) {
	port := opts.Port
	if port == 0 {
		var err error
		if port, err = freeLoopbackPort(); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "otafleet-mosquitto-")
	if err != nil {
		return nil, err
	}
	// Queue limits are raised because the gateway receives a whole fleet's
	// reports on one session; the defaults (1000 queued, 20 in flight) are
	// sized for small devices, not for a backend subscriber, which holds
	// each report unacknowledged until it is written (docs/brokers.md).
	conf := fmt.Sprintf(`listener %d 127.0.0.1
allow_anonymous true
persistence false
log_dest stderr
log_type error
log_type warning
max_queued_messages 1000000
max_inflight_messages 20000
`, port)
	confPath := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	m := &Mosquitto{
		Address: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Port: port, dir: dir,
		logs: &tailBufferMQ{max: 8 << 10}, exited: make(chan struct{}),
	}
	m.URL = "tcp://" + m.Address
	m.cmd = exec.Command(bin, "-c", confPath)
	m.cmd.Stdout, m.cmd.Stderr = m.logs, m.logs
	if err := m.cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("starting mosquitto: %w", err)
	}
	go func() { _ = m.cmd.Wait(); close(m.exited) }()

	timeout := opts.ReadyTimeout
	if timeout == 0 {
		timeout = 20 * time.Second
	}
	if err := m.waitPort(ctx, timeout); err != nil {
		_ = m.Stop()
		return nil, fmt.Errorf("%w; mosquitto output:\n%s", err, m.logs.String())
	}
	return m, nil
}

// waitPort dials the port until it connects, the process exits, the context
// ends or the timeout passes.
func (m *Mosquitto) waitPort(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		d := net.Dialer{Timeout: time.Second}
		if c, err := d.DialContext(ctx, "tcp", m.Address); err == nil {
			_ = c.Close()
			return nil
		}
		select {
		case <-m.exited:
			return fmt.Errorf("mosquitto exited before listening (%v)", m.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("mosquitto not listening on %s: %w", m.Address, ctx.Err())
		case <-tick.C:
		}
	}
}

// Stop terminates the broker (SIGTERM, then SIGKILL after 10 s), waits for
// it and removes its directory. It is safe to call more than once.
func (m *Mosquitto) Stop() error {
	m.stopOnce.Do(func() {
		if m.cmd.Process != nil {
			_ = m.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-m.exited:
			case <-time.After(10 * time.Second):
				_ = m.cmd.Process.Kill()
				select {
				case <-m.exited:
				case <-time.After(10 * time.Second):
					m.stopErr = errors.New("mosquitto did not exit after SIGKILL")
				}
			}
		}
		if err := os.RemoveAll(m.dir); err != nil && m.stopErr == nil {
			m.stopErr = err
		}
	})
	return m.stopErr
}

// Logs returns the end of the broker's output, to explain a failure.
func (m *Mosquitto) Logs() string { return m.logs.String() }

func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tailBufferMQ keeps the last max bytes written to it.
type tailBufferMQ struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBufferMQ) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if extra := len(t.buf) - t.max; extra > 0 {
		t.buf = append(t.buf[:0], t.buf[extra:]...)
	}
	return len(p), nil
}

func (t *tailBufferMQ) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// Pid is the broker process's ID, for measuring what it costs.
func (m *Mosquitto) Pid() int { return m.cmd.Process.Pid }
