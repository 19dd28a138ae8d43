package chaos

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/otafleet/otafleet/internal/lab"
)

// startManagers starts the replicas of the manager and waits until one of
// them leads.
func (r *rig) startManagers(ctx context.Context, replicas int) {
	for range replicas {
		r.addReplica()
	}
	if _, _, err := r.waitLeader(ctx, 0, 2*time.Minute); err != nil {
		r.t.Fatal(err)
	}
}

// addReplica starts one more replica of the manager and returns its index.
func (r *rig) addReplica() int {
	port, err := freePort()
	if err != nil {
		r.t.Fatal(err)
	}
	i := len(r.managers)
	r.metrics = append(r.metrics, "127.0.0.1:"+strconv.Itoa(port))
	r.managers = append(r.managers, nil)
	if err := r.startManager(i); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = r.managers[i].kill() })
	return i
}

// startManager starts replica i's manager process: leader election on, the
// same MQTT client ID for every replica and every restart, so that the
// leader takes over the persistent session.
func (r *rig) startManager(i int) error {
	r.starts++
	args := append([]string{"--leader-elect", "--leader-election-namespace", systemNS,
		"--metrics-bind-address", r.metrics[i], "--health-probe-bind-address", "0",
		"--mqtt-broker", r.broker.URL, "--mqtt-client-id", clientID,
		"--s3-endpoint", r.store.Endpoint, "--s3-insecure", "--s3-credentials-secret", systemNS + "/otafleet-s3",
		"--download-url", "http://" + downloadHost, "--download-secret", systemNS + "/otafleet-download"}, r.managerArgs...)
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

func (r *rig) managerLog(i int) string {
	return filepath.Join(r.dir, "manager-"+strconv.Itoa(i)+".log")
}

// waitLeader waits until a replica leads and takes work: its gateway is
// connected and subscribed (only the leader's is), and its engine holds at
// least devices devices (it rebuilt the inventory). It returns which
// replica and when.
func (r *rig) waitLeader(ctx context.Context, devices int, timeout time.Duration) (int, time.Time, error) {
	leader := -1
	last := make([]managerMetrics, len(r.managers))
	err := lab.Poll(ctx, timeout, func() (bool, error) {
		for i, p := range r.managers {
			if p.exited() {
				return false, fmt.Errorf("%s exited: %v (log %s)", p.name, p.err, r.managerLog(i))
			}
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
		return -1, time.Time{}, fmt.Errorf("no manager took work: %w (last metrics %+v)", err, last)
	}
	return leader, time.Now(), nil
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

// replicaName is replica i's pod name: the prefix of its Lease identity.
func replicaName(i int) string { return "replica-" + strconv.Itoa(i) }
