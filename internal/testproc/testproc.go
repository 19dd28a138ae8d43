// Package testproc runs built commands as their own processes for tests that
// kill them: the crash harness (test/chaos) and the replicas test
// (test/shards).
package testproc

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

	"k8s.io/apimachinery/pkg/util/wait"
)

// Build builds the named commands of cmd/ into dir, at low priority: the
// machine is shared. Go's build cache makes a second run cost only the
// link. It returns each binary's path by command name.
func Build(ctx context.Context, dir string, commands ...string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	args := []string{"go", "build", "-o", dir + string(os.PathSeparator)}
	bins := map[string]string{}
	for _, c := range commands {
		args = append(args, "github.com/otafleet/otafleet/cmd/"+c)
		bins[c] = filepath.Join(dir, c)
	}
	if out, err := exec.CommandContext(ctx, "nice", args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building %v: %v: %s", commands, err, out)
	}
	return bins, nil
}

// Proc is one run of a binary as its own process, its output appended to a
// log file that outlives restarts.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process exited and was reaped
	// Err is what Wait returned; read it once Exited.
	Err error
}

// Start starts bin with args and extra environment, stdout to stdout
// (the log when nil) and stderr to the log file at logPath.
func Start(name, logPath string, stdout *os.File, env []string, bin string, args ...string) (*Proc, error) {
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
	p := &Proc{Name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.Err = cmd.Wait()
		_ = logf.Close()
		close(p.done)
	}()
	return p, nil
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL and waits until the process is gone.
func (p *Proc) Kill() error {
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s (pid %d) still runs 30 s after SIGKILL", p.Name, p.cmd.Process.Pid)
	}
}

// Stop sends SIGTERM, waits up to timeout for the process to exit and
// returns what it exited with; it is killed if it does not.
func (p *Proc) Stop(timeout time.Duration) error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-p.done:
		return p.Err
	case <-time.After(timeout):
		_ = p.Kill()
		return fmt.Errorf("%s did not exit within %s of SIGTERM; killed", p.Name, timeout)
	}
}

// FreePort returns a loopback port nobody listens on now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// WaitListening dials addr until it accepts, the process exits or the
// timeout passes.
func WaitListening(ctx context.Context, p *Proc, addr string, timeout time.Duration) error {
	return wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("%s exited (%v) before listening on %s", p.Name, p.Err, addr)
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err == nil, nil
	})
}
