package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/otafleet/otafleet/internal/lab"
)

// binaries are the harness's builds of the real commands.
type binaries struct {
	manager, devicesim, download string
}

// buildBinaries builds cmd/manager, cmd/devicesim and cmd/otafleet-download
// into dir, at low priority: the machine is shared. Go's build cache makes
// a second run cost only the link.
func buildBinaries(ctx context.Context, dir string) (binaries, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	const mod = "github.com/otafleet/otafleet/cmd/"
	cmd := exec.CommandContext(ctx, "nice", "go", "build", "-o", dir+string(os.PathSeparator),
		mod+"manager", mod+"devicesim", mod+"otafleet-download")
	if out, err := cmd.CombinedOutput(); err != nil {
		return binaries{}, fmt.Errorf("building the binaries: %v: %s", err, out)
	}
	return binaries{
		manager:   filepath.Join(dir, "manager"),
		devicesim: filepath.Join(dir, "devicesim"),
		download:  filepath.Join(dir, "otafleet-download"),
	}, nil
}

// proc is one run of a binary as its own process, its output appended to a
// log file that outlives restarts.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process exited and was reaped
	err  error         // what Wait returned; read after done
}

// startProc starts bin with args and extra environment, stdout to stdout
// (the log when nil) and stderr to the log file at logPath.
func startProc(name, logPath string, stdout *os.File, env []string, bin string, args ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logf, "=== %s %s: %s %s\n", time.Now().Format(time.RFC3339Nano), name, bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if stdout != nil {
		cmd.Stdout = stdout
	}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = logf.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill() error {
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s (pid %d) still runs 30 s after SIGKILL", p.name, p.cmd.Process.Pid)
	}
}

// stop sends SIGTERM, waits up to timeout for the process to exit and
// returns what it exited with; it is killed if it does not.
func (p *proc) stop(timeout time.Duration) error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		_ = p.kill()
		return fmt.Errorf("%s did not exit within %s of SIGTERM; killed", p.name, timeout)
	}
}

// freePort returns a loopback port nobody listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitListening dials addr until it accepts, the process exits or the
// timeout passes.
func waitListening(ctx context.Context, p *proc, addr string, timeout time.Duration) error {
	return lab.Poll(ctx, timeout, func() (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("%s exited (%v) before listening on %s", p.name, p.err, addr)
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err == nil, nil
	})
}
