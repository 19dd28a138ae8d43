package testserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// MinIOOptions tunes StartMinIO. The zero value is what tests want: free
// loopback ports, random credentials and a temporary data directory.
type MinIOOptions struct {
	// Address is the S3 API listen address. Empty picks a free port on
	// 127.0.0.1. The playground sets "127.0.0.1:80" so that devices built on
	// the vendor SDK, which ignore URL ports, can download.
	Address string
	// ConsoleAddress is the web console listen address; empty picks a free
	// loopback port.
	ConsoleAddress string
	// AccessKey and SecretKey are the root credentials; empty generates
	// random ones.
	AccessKey string
	SecretKey string
	// DataDir keeps the data in a directory the caller owns (it is not
	// removed on Stop). Empty uses a temporary directory removed on Stop.
	DataDir string
	// Output receives the server's stdout and stderr; nil keeps only the
	// last few KiB to explain a failed start.
	Output io.Writer
	// ReadyTimeout bounds the wait for the health endpoint; default 60 s,
	// generous because a loaded 2-core machine starts MinIO slowly.
	ReadyTimeout time.Duration
}

// MinIO is a running MinIO server.
type MinIO struct {
	// Endpoint is host:port of the S3 API, as minio-go wants it.
	Endpoint string
	// URL is the S3 API base URL, http://host:port.
	URL string
	// ConsoleAddress is host:port of the web console.
	ConsoleAddress string
	// AccessKey and SecretKey are the root credentials.
	AccessKey string
	SecretKey string
	// DataDir is where the server keeps its objects.
	DataDir string

	bin      string
	out      io.Writer
	logs     *tailBuffer
	timeout  time.Duration
	ownsDir  bool
	stopOnce sync.Once
	stopErr  error

	proc process
}

// StartMinIO starts a MinIO server built by hack/setup-test-env.sh and
// returns once it answers its readiness probe. Call Stop to kill it and
// remove its temporary data.
func StartMinIO(ctx context.Context, opts MinIOOptions) (*MinIO, error) {
	bins, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	// A free port found by listening and closing can be taken by someone else
	// before MinIO binds it; retry with fresh ports when ours were chosen.
	attempts := 1
	if opts.Address == "" || opts.ConsoleAddress == "" {
		attempts = 3
	}
	for i := 1; ; i++ {
		m, err := startMinIO(ctx, bins.MinIO, opts)
		if err == nil || i == attempts || ctx.Err() != nil {
			return m, err
		}
	}
}

func startMinIO(ctx context.Context, bin string, opts MinIOOptions) (*MinIO, error) {
	m := &MinIO{proc: process{name: "minio"}, AccessKey: opts.AccessKey, SecretKey: opts.SecretKey, DataDir: opts.DataDir, bin: bin,
		logs: &tailBuffer{max: 8 << 10}, timeout: opts.ReadyTimeout}
	if err := m.fillDefaults(opts); err != nil {
		return nil, err
	}
	m.out = m.logs
	if opts.Output != nil {
		m.out = io.MultiWriter(m.logs, opts.Output)
	}
	if m.timeout == 0 {
		m.timeout = 60 * time.Second
	}
	if err := m.launch(ctx); err != nil {
		_ = m.Stop()
		return nil, err
	}
	return m, nil
}

// launch starts the server process and waits until it is ready.
func (m *MinIO) launch(ctx context.Context) error {
	cmd := exec.Command(m.bin, "server", m.DataDir,
		"--address", m.Endpoint, "--console-address", m.ConsoleAddress, "--quiet")
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+m.AccessKey,
		"MINIO_ROOT_PASSWORD="+m.SecretKey,
		"MINIO_UPDATE=off",
	)
	cmd.Stdout, cmd.Stderr = m.out, m.out
	if err := m.proc.start(cmd); err != nil {
		return err
	}
	if err := m.waitReady(ctx, m.timeout); err != nil {
		return fmt.Errorf("%w; minio output:\n%s", err, m.logs.String())
	}
	return nil
}

// Halt ends the server with sig and waits until it is gone, keeping its
// data, addresses and credentials for Restart.
func (m *MinIO) Halt(sig syscall.Signal) error {
	return m.proc.halt(sig)
}

// Restart starts a halted server again on the same data, addresses and
// credentials, and waits until it is ready.
func (m *MinIO) Restart(ctx context.Context) error {
	if err := m.proc.halted(); err != nil {
		return err
	}
	return m.launch(ctx)
}

func (m *MinIO) fillDefaults(opts MinIOOptions) error {
	var err error
	if m.AccessKey == "" {
		m.AccessKey = "otafleet-" + randomHex(6)
	}
	if m.SecretKey == "" {
		m.SecretKey = randomHex(20)
	}
	if m.Endpoint = opts.Address; m.Endpoint == "" {
		if m.Endpoint, err = freeLoopbackAddress(); err != nil {
			return err
		}
	}
	if m.ConsoleAddress = opts.ConsoleAddress; m.ConsoleAddress == "" {
		if m.ConsoleAddress, err = freeLoopbackAddress(); err != nil {
			return err
		}
	}
	m.URL = "http://" + m.Endpoint
	if m.DataDir == "" {
		if m.DataDir, err = os.MkdirTemp("", "otafleet-minio-"); err != nil {
			return err
		}
		m.ownsDir = true
	}
	return nil
}

// waitReady polls the readiness endpoint until it answers 200, the process
// exits, the context ends or the timeout passes.
func (m *MinIO) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.URL+"/minio/health/ready", nil)
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		cmd, exited := m.proc.current()
		select {
		case <-exited:
			return fmt.Errorf("minio exited before it was ready (%v)", cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("minio not ready at %s: %w", m.URL, ctx.Err())
		case <-tick.C:
		}
	}
}

// Stop kills the server, waits for it to exit and removes its temporary data
// directory. It is safe to call more than once.
func (m *MinIO) Stop() error {
	m.stopOnce.Do(func() {
		if cmd, exited := m.proc.current(); cmd != nil && cmd.Process != nil {
			_ = cmd.Process.Kill()
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				m.stopErr = errors.New("minio did not exit within 30s of SIGKILL")
			}
		}
		if err := m.removeData(); err != nil && m.stopErr == nil {
			m.stopErr = err
		}
	})
	return m.stopErr
}

func (m *MinIO) removeData() error {
	if !m.ownsDir || m.DataDir == "" {
		return nil
	}
	return os.RemoveAll(m.DataDir)
}

// freeLoopbackAddress asks the kernel for a free port on 127.0.0.1.
func freeLoopbackAddress() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(l.Addr().(*net.TCPAddr).Port)), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms.
	return hex.EncodeToString(b)
}

// tailBuffer keeps the last max bytes written to it; the server's output is
// only needed to explain a failed start.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if extra := t.buf.Len() - t.max; extra > 0 {
		t.buf.Next(extra)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}
