package chaos

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/otafleet/otafleet/internal/lab"
)

// restart is a manager process that exited by itself (not killed by the
// harness) and was started again, as a kubelet restarts a container.
type restart struct {
	replica int
	at      time.Time
	err     error
}

// startManagers starts the replicas of the manager, the supervisor that
// restarts any that exits by itself, and waits until one of them leads.
func (r *rig) startManagers(ctx context.Context, replicas int) {
	r.nextStart = make([]time.Time, replicas)
	for i := range replicas {
		port, err := freePort()
		if err != nil {
			r.t.Fatal(err)
		}
		r.metrics = append(r.metrics, "127.0.0.1:"+strconv.Itoa(port))
		r.managers = append(r.managers, nil)
		if err := r.startManager(i); err != nil {
			r.t.Fatal(err)
		}
	}
	sctx, stop := context.WithCancel(ctx)
	supervised := make(chan struct{})
	go func() {
		defer close(supervised)
		r.supervise(sctx)
	}()
	r.t.Cleanup(func() {
		stop()
		<-supervised
		for i := range r.managers {
			_ = r.manager(i).kill()
		}
	})
	if _, _, err := r.waitLeader(ctx, 0, 2*time.Minute); err != nil {
		r.t.Fatal(err)
	}
}

// supervise restarts every manager process that exited by itself (a
// leader that could not renew its lease exits) until ctx ends.
func (r *rig) supervise(ctx context.Context) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		for i, p := range r.managers {
			if p.exited() && time.Now().After(r.nextStart[i]) {
				r.restarts = append(r.restarts, restart{replica: i, at: time.Now(), err: p.err})
				r.nextStart[i] = time.Now().Add(r.crashBackoff(i))
				if err := r.startManagerLocked(i); err != nil {
					r.t.Errorf("restarting replica %d: %v", i, err)
				}
			}
		}
		r.mu.Unlock()
	}
}

// crashBackoff is how long replica i's next restart waits, as a kubelet's
// CrashLoopBackOff: 1 s, doubling up to 10 s while it keeps exiting within
// a minute of its last restart. Called with r.mu held.
func (r *rig) crashBackoff(i int) time.Duration {
	d := time.Second
	for j := len(r.restarts) - 2; j >= 0; j-- {
		x := r.restarts[j]
		if x.replica != i {
			continue
		}
		if time.Since(x.at) > time.Minute {
			break
		}
		d = min(2*d, 10*time.Second)
	}
	return d
}

// replace SIGKILLs replica i's process and starts a new one in its place.
func (r *rig) replace(i int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.managers[i].kill(); err != nil {
		return err
	}
	return r.startManagerLocked(i)
}

// startManager starts replica i's manager process: leader election on, the
// same MQTT client ID for every replica and every restart, so that the
// leader takes over the persistent session.
func (r *rig) startManager(i int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.startManagerLocked(i)
}

func (r *rig) startManagerLocked(i int) error {
	r.starts++
	args := append([]string{"--leader-elect", "--leader-election-namespace", systemNS,
		"--metrics-bind-address", r.metrics[i], "--health-probe-bind-address", "0",
		"--mqtt-broker", r.broker.URL, "--mqtt-client-id", clientID,
		"--s3-endpoint", r.store.Endpoint, "--s3-insecure", "--s3-credentials-secret", systemNS + "/otafleet-s3",
		"--download-url", "http://" + downloadHost, "--download-secret", systemNS + "/otafleet-download"}, r.leaseFlags...)
	args = append(args, r.managerArgs...)
	if r.replicaArgs != nil {
		args = append(args, r.replicaArgs(i)...)
	}
	p, err := startProc(fmt.Sprintf("manager #%d (replica %d)", r.starts, i), r.managerLog(i), nil,
		[]string{"KUBECONFIG=" + r.kubeconfig, "POD_NAME=" + replicaName(i)}, r.bins.manager, args...)
	if err != nil {
		return err
	}
	r.managers[i] = p
	return nil
}

// addReplica starts one more replica of the manager, outside the
// supervisor (a replica the test stops stays stopped), and returns its
// index.
func (r *rig) addReplica() int {
	port, err := freePort()
	if err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	i := len(r.managers)
	r.metrics = append(r.metrics, "127.0.0.1:"+strconv.Itoa(port))
	r.managers = append(r.managers, nil)
	r.nextStart = append(r.nextStart, time.Time{})
	err = r.startManagerLocked(i)
	r.mu.Unlock()
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = r.manager(i).kill() })
	return i
}

// replicaName is replica i's pod name: the prefix of its Lease identity.
func replicaName(i int) string { return "replica-" + strconv.Itoa(i) }

// manager is replica i's current process.
func (r *rig) manager(i int) *proc {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.managers[i]
}

func (r *rig) restartCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.restarts)
}

func (r *rig) managerLog(i int) string {
	return filepath.Join(r.dir, "manager-"+strconv.Itoa(i)+".log")
}

// waitLeader waits until a replica leads and takes work: its gateway is
// connected and subscribed (only the leader's is), and its engine holds at
// least devices devices (it rebuilt the inventory). It returns which
// replica and when.
func (r *rig) waitLeader(ctx context.Context, devices int, timeout time.Duration) (int, time.Time, error) {
	leader := -1
	last := make([]managerMetrics, len(r.metrics))
	err := lab.Poll(ctx, timeout, func() (bool, error) {
		for i := range r.metrics {
			m, err := scrape(ctx, r.metrics[i])
			last[i] = m
			if err == nil && m.connected && m.devices >= float64(devices) {
				leader = i
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return -1, time.Time{}, fmt.Errorf("no manager took work: %w (last metrics %+v; logs %s)", err, last, r.managerLog(0))
	}
	return leader, time.Now(), nil
}

// leaderMetrics are the metrics of the replica whose engine holds the
// fleet (the leader; a standby's holds nothing).
func (r *rig) leaderMetrics(ctx context.Context) (managerMetrics, bool) {
	for i := range r.metrics {
		if m, err := scrape(ctx, r.metrics[i]); err == nil && m.devices >= float64(r.devices) {
			return m, true
		}
	}
	return managerMetrics{}, false
}

// connects is how often the leader's gateway connected so far.
func (r *rig) connects(ctx context.Context) float64 {
	m, _ := r.leaderMetrics(ctx)
	return m.connects
}

// firstPush waits until replica i's process p has pushed an upgrade and
// returns when that was seen, or the zero time if it did not within the
// timeout or was killed first (the rollout may have nothing left to push).
func (r *rig) firstPush(ctx context.Context, i int, p *proc, timeout time.Duration) time.Time {
	var at time.Time
	_ = lab.Poll(ctx, timeout, func() (bool, error) {
		if p.exited() {
			return true, nil
		}
		m, err := scrape(ctx, r.metrics[i])
		if err == nil && m.pushes > 0 {
			at = time.Now()
		}
		return !at.IsZero(), nil
	})
	return at
}

// restartList is every manager process that exited by itself.
func (r *rig) restartList() []restart {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]restart(nil), r.restarts...)
}
