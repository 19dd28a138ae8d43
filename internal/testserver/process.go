package testserver

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// process is a server's current process, which Halt ends and Restart
// replaces while keeping the server's data, port and credentials.
type process struct {
	name   string
	mu     sync.Mutex // guards cmd and exited
	cmd    *exec.Cmd
	exited chan struct{}
}

// start starts cmd as the server's process.
func (p *process) start(cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", p.name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
	return nil
}

// current returns the process and the channel closed when it exits.
func (p *process) current() (*exec.Cmd, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd, p.exited
}

// halt ends the process with sig and waits until it is gone.
func (p *process) halt(sig syscall.Signal) error {
	cmd, exited := p.current()
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-exited:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s still runs 30 s after %s", p.name, sig)
	}
}

// halted refuses a restart while the process runs.
func (p *process) halted() error {
	if _, exited := p.current(); !isClosed(exited) {
		return fmt.Errorf("%s: Restart while it runs", p.name)
	}
	return nil
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
