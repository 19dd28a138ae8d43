package chaos

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"syscall"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/lab"
)

// fault is a failure of something other than the manager, injected while
// a rollout runs (or, for upload faults, while a Firmware's image is being
// taken in). The run then gets the same exact check as the kill runs.
type fault struct {
	name string
	what string // what is injected, for the report
	// upload: injected right after a Firmware's image was uploaded, not
	// during a rollout.
	upload bool
	inject func(ctx context.Context, r *rig) (faultRun, error)
}

// faultRun is one injection and how the system came back.
type faultRun struct {
	name  string
	round int
	at    time.Time
	down  time.Duration // from the fault to the server answering again
	back  time.Duration // from the fault to the leading manager working again
	note  string
}

// Outages. MinIO's is the 30 s. The API server's is shorter than
// the leader's renew deadline (10 s by default) plus its own start-up, so
// a leader may keep or lose its lease depending on how fast the API server
// comes back: both are checked the same way.
const (
	minioDown     = 30 * time.Second
	apiserverDown = 5 * time.Second
)

// faultTable is every fault CHAOS_FAULTS can name.
var faultTable = []fault{
	{name: "broker", what: "Mosquitto without persistence SIGKILLed and restarted at once on its port (sessions, subscriptions and queued messages lost)",
		inject: restartBroker(syscall.SIGKILL)},
	{name: "broker-persist", what: "Mosquitto with persistence stopped with SIGTERM (it saves sessions and queued messages) and restarted at once",
		inject: restartBroker(syscall.SIGTERM)},
	{name: "minio", what: "MinIO SIGKILLed during downloads, restarted on its data 30 s later", inject: stopMinIO},
	{name: "minio-upload", upload: true, what: "MinIO SIGKILLed right after a Firmware's image was uploaded, restarted on its data 30 s later",
		inject: stopMinIO},
	{name: "apiserver", what: "kube-apiserver stopped (SIGTERM) for 5 s and started again, etcd kept", inject: restartAPIServer},
	// replicas is a manager kill with a standby: it adds kills and a
	// second replica (see parseFaults).
	{name: "replicas", what: "two managers, the leader SIGKILLed; the standby takes over"},
}

// parseFaults reads CHAOS_FAULTS (comma-separated names of faultTable).
func parseFaults(v string) ([]string, error) {
	var out []string
	for _, name := range strings.Split(v, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if _, ok := faultNamed(name); !ok {
			var names []string
			for _, f := range faultTable {
				names = append(names, f.name)
			}
			return nil, fmt.Errorf("unknown fault %q; known: %s", name, strings.Join(names, ","))
		}
		out = append(out, name)
	}
	if slices.Contains(out, "broker") && slices.Contains(out, "broker-persist") {
		return nil, fmt.Errorf("broker and broker-persist need brokers configured differently: run them separately")
	}
	return out, nil
}

func faultNamed(name string) (fault, bool) {
	for _, f := range faultTable {
		if f.name == name {
			return f, true
		}
	}
	return fault{}, false
}

// restartBroker stops Mosquitto with sig, starts it again at once and
// waits until the leader's gateway connected and subscribed again.
func restartBroker(sig syscall.Signal) func(context.Context, *rig) (faultRun, error) {
	return func(ctx context.Context, r *rig) (faultRun, error) {
		run := faultRun{at: time.Now()}
		connects := r.connects(ctx)
		if err := r.broker.Halt(sig); err != nil {
			return run, err
		}
		if err := r.broker.Restart(ctx); err != nil {
			return run, err
		}
		run.down = time.Since(run.at)
		err := lab.Poll(ctx, 2*time.Minute, func() (bool, error) {
			m, ok := r.leaderMetrics(ctx)
			return ok && m.connected && m.connects > connects, nil
		})
		run.back = time.Since(run.at)
		return run, err
	}
}

// stopMinIO kills MinIO, keeps it down for minioDown (the injected
// outage, not a synchronization) and starts it again on its data.
func stopMinIO(ctx context.Context, r *rig) (faultRun, error) {
	run := faultRun{at: time.Now()}
	if err := r.store.Halt(syscall.SIGKILL); err != nil {
		return run, err
	}
	sleep(ctx, minioDown)
	if err := r.store.Restart(ctx); err != nil {
		return run, err
	}
	run.down = time.Since(run.at)
	run.back = run.down
	return run, nil
}

// restartAPIServer stops kube-apiserver for apiserverDown, starts it again
// and waits until a manager leads and took work: the leader may have kept
// its lease, or lost it and exited (then the rig restarts it, as a kubelet
// would).
func restartAPIServer(ctx context.Context, r *rig) (faultRun, error) {
	run := faultRun{at: time.Now()}
	restarts := r.restartCount()
	if err := r.cp.StopAPIServer(); err != nil {
		return run, err
	}
	sleep(ctx, apiserverDown)
	if err := r.cp.StartAPIServer(); err != nil {
		return run, err
	}
	run.down = time.Since(run.at)
	_, _, err := r.waitLeader(ctx, r.devices, 3*time.Minute)
	run.back = time.Since(run.at)
	if n := r.restartCount() - restarts; n > 0 {
		run.note = fmt.Sprintf("the leader lost its lease and exited; %d restart(s) until a manager took work", n)
	} else {
		run.note = "the leader kept its lease"
	}
	return run, err
}

// uploadFault is a fault to inject while the next Firmware's upload is
// taken in, and where to record it.
type uploadFault struct {
	fault
	round int
	delay time.Duration // after the upload, seeded
	k     *killer
}

// injectDuringUpload injects the fault a seeded delay after the image was
// uploaded, and watches the Firmware meanwhile: it must never be Ready
// with another digest than the image's, and says why it is not Ready.
func (r *rig) injectDuringUpload(ctx context.Context, u *uploadFault, fw *otav1.Firmware, sha string) error {
	sleep(ctx, u.delay)
	injected := make(chan struct{})
	var run faultRun
	var err error
	go func() {
		defer close(injected)
		run, err = u.inject(ctx, r)
	}()
	seen := map[string]bool{}
	var bad error
	_ = lab.Poll(ctx, time.Hour, func() (bool, error) {
		got := &otav1.Firmware{}
		if r.c.Get(ctx, client.ObjectKeyFromObject(fw), got) == nil {
			if c := apimeta.FindStatusCondition(got.Status.Conditions, otav1.ConditionReady); c != nil {
				seen[string(c.Status)+" "+c.Reason] = true
				if a := got.Status.Artifact; c.Status == metav1.ConditionTrue && (a == nil || a.SHA256 != sha) {
					bad = fmt.Errorf("%s Ready with artifact %+v; the image has sha256 %s", fw.Name, a, sha)
				}
			}
		}
		return isClosed(injected) || bad != nil, nil
	})
	<-injected
	run.name, run.round = u.name, u.round
	run.note = fmt.Sprintf("%s after the upload; Ready conditions seen meanwhile: %s", u.delay.Round(time.Millisecond),
		strings.Join(slices.Sorted(maps.Keys(seen)), ", "))
	u.k.record(run)
	if bad != nil {
		return bad
	}
	return err
}

// record adds a fault injected outside the killer's own plan.
func (k *killer) record(run faultRun) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.faults = append(k.faults, run)
	k.lastUp = time.Now()
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// lossyWindows are the spans in which a broker without persistence loses
// what devices report: from a second before it was killed (messages it
// had taken but not passed on yet) until the leader's gateway subscribed
// again (before that, nobody subscribes to the devices' topics).
func lossyWindows(faults []faultRun) []window {
	var out []window
	for _, f := range faults {
		if f.name == "broker" {
			out = append(out, window{from: f.at.Add(-time.Second), to: f.at.Add(f.back)})
		}
	}
	return out
}

// observe records, until the returned function is called, the Ready
// conditions of round's batch and Firmware (what a user sees during a
// fault), and returns them as text.
func (r *rig) observe(ctx context.Context, round int) func() string {
	ctx, cancel := context.WithCancel(ctx)
	version := fmt.Sprintf("%d.0.0", round+1)
	done := make(chan struct{})
	seen := map[string]bool{}
	go func() {
		defer close(done)
		_ = lab.Poll(ctx, time.Hour, func() (bool, error) {
			ub, fw := &otav1.UpgradeBatch{}, &otav1.Firmware{}
			if r.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "to-" + version}, ub) == nil {
				if c := apimeta.FindStatusCondition(ub.Status.Conditions, otav1.ConditionReady); c != nil {
					seen["batch "+string(c.Status)+" "+c.Reason] = true
				}
			}
			if r.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: product + "-" + version}, fw) == nil {
				if c := apimeta.FindStatusCondition(fw.Status.Conditions, otav1.ConditionReady); c != nil {
					seen["Firmware "+string(c.Status)+" "+c.Reason] = true
				}
			}
			return false, nil
		})
	}()
	return func() string {
		cancel()
		<-done
		return "Ready conditions seen meanwhile: " + strings.Join(slices.Sorted(maps.Keys(seen)), ", ")
	}
}
