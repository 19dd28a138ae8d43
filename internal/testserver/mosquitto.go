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
	// Persistence keeps sessions, subscriptions and queued QoS 1 messages
	// in a file of the broker's directory, so that they survive Halt and
	// Restart. Mosquitto writes the file when it exits on SIGTERM (and
	// every autosave_interval, 30 min by default): a SIGKILLed broker
	// comes back with what the last save held.
	Persistence bool
	// MaxQueued is max_queued_messages, the messages the broker keeps for
	// a session that does not take them fast enough (beyond, it drops
	// them): default 1,000,000. A million devices' boot reports need more.
	MaxQueued int
}

// Mosquitto is a running Mosquitto broker on loopback, anonymous access
// allowed, nothing persisted unless MosquittoOptions.Persistence.
type Mosquitto struct {
	// Address is 127.0.0.1:port; URL is tcp://Address.
	Address string
	URL     string
	Port    int

	bin      string
	confPath string
	timeout  time.Duration
	dir      string
	logs     *tailBufferMQ
	stopOnce sync.Once
	stopErr  error

	proc process
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
	confPath := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(confPath, []byte(mosquittoConf(port, dir, opts.Persistence, max(opts.MaxQueued, 1_000_000))), 0o644); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	m := &Mosquitto{proc: process{name: "mosquitto"},
		Address: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Port: port, dir: dir,
		bin: bin, confPath: confPath, timeout: opts.ReadyTimeout, logs: &tailBufferMQ{max: 8 << 10},
	}
	if m.timeout == 0 {
		m.timeout = 20 * time.Second
	}
	m.URL = "tcp://" + m.Address
	if err := m.launch(ctx); err != nil {
		_ = m.Stop()
		return nil, err
	}
	return m, nil
}

// mosquittoConf is the broker's configuration. Queue limits are raised
// because the gateway receives a whole fleet's reports on one session; the
// defaults (1000 queued, 20 in flight) are sized for small devices, not
// for a backend subscriber, which holds each report unacknowledged until
// it is written (docs/brokers.md). Run as root, Mosquitto would drop to
// the mosquitto user, which cannot write our temporary directory.
func mosquittoConf(port int, dir string, persist bool, queued int) string {
	conf := fmt.Sprintf(`listener %d 127.0.0.1
allow_anonymous true
log_dest stderr
log_type error
log_type warning
max_queued_messages %d
max_inflight_messages 20000
`, port, queued)
	if !persist {
		return conf + "persistence false\n"
	}
	conf += "persistence true\npersistence_location " + dir + string(os.PathSeparator) + "\n"
	if os.Geteuid() == 0 {
		conf += "user root\n"
	}
	return conf
}

// launch starts the broker process and waits until its port accepts
// connections.
func (m *Mosquitto) launch(ctx context.Context) error {
	cmd := exec.Command(m.bin, "-c", m.confPath)
	cmd.Stdout, cmd.Stderr = m.logs, m.logs
	if err := m.proc.start(cmd); err != nil {
		return err
	}
	if err := m.waitPort(ctx, m.timeout); err != nil {
		return fmt.Errorf("%w; mosquitto output:\n%s", err, m.logs.String())
	}
	return nil
}

// Halt ends the broker with sig (SIGKILL: a crash; SIGTERM: a clean stop,
// which saves persisted state) and waits until it is gone, keeping its
// directory and port for Restart.
func (m *Mosquitto) Halt(sig syscall.Signal) error {
	return m.proc.halt(sig)
}

// Restart starts a halted broker again, on the same port and with the
// same configuration (and, with persistence, what it saved).
func (m *Mosquitto) Restart(ctx context.Context) error {
	if err := m.proc.halted(); err != nil {
		return err
	}
	return m.launch(ctx)
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
		cmd, exited := m.proc.current()
		select {
		case <-exited:
			return fmt.Errorf("mosquitto exited before listening (%v)", cmd.ProcessState)
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
		if cmd, exited := m.proc.current(); cmd != nil && cmd.Process != nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				select {
				case <-exited:
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
func (m *Mosquitto) Pid() int {
	cmd, _ := m.proc.current()
	return cmd.Process.Pid
}
