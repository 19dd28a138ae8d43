// Package chaos is the crash harness of issue #19: the built manager,
// download service and simulator run as their own processes against a real
// kube-apiserver and etcd, Mosquitto and MinIO; the manager is SIGKILLed at
// seeded random instants during rollouts and restarted, and at the end
// every record the operator keeps is checked exactly against the
// simulator's own record of what each device did. See docs/chaos.md.
package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/lab"
)

// config is a run's shape, from the environment (make chaos sets it).
type config struct {
	seed    int64
	kills   int
	devices int
	dir     string  // CHAOS_DIR keeps the logs and the devices' record there
	waves   []int32 // CHAOS_WAVES: the waves' cumulative percentages
	// replicas of the manager (CHAOS_REPLICAS): with two, the leader is
	// killed and the standby takes over.
	replicas int
	// faults (CHAOS_FAULTS) are injected besides the kills, repeat times
	// each (CHAOS_FAULT_REPEAT); see faultTable.
	faults []string
	repeat int
	// lease is the managers' lease duration, renew deadline and retry
	// period (CHAOS_LEASE=15s,10s,2s); empty keeps cmd/manager's defaults.
	lease []string
}

// leaseFlags are the managers' --leader-elect-* flags for c.lease.
func (c config) leaseFlags() []string {
	var out []string
	for i, name := range []string{"--leader-elect-lease-duration", "--leader-elect-renew-deadline", "--leader-elect-retry-period"} {
		if i < len(c.lease) {
			out = append(out, name, c.lease[i])
		}
	}
	return out
}

func configFromEnv(t *testing.T) config {
	c := config{seed: time.Now().UnixNano(), kills: 3, devices: 2000,
		dir:   os.Getenv("CHAOS_DIR"),
		waves: []int32{10, 50, 100}, replicas: 1, repeat: 1}
	c.faultsFromEnv(t)
	for name, dst := range map[string]*int{"CHAOS_KILLS": &c.kills, "CHAOS_DEVICES": &c.devices, "CHAOS_REPLICAS": &c.replicas,
		"CHAOS_FAULT_REPEAT": &c.repeat} {
		if v := os.Getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				t.Fatalf("%s=%q: want a number", name, v)
			}
			*dst = n
		}
	}
	if slices.Contains(c.faults, "replicas") {
		// Leader kills with a standby: the kills of the run.
		c.replicas = max(c.replicas, 2)
		c.kills += c.repeat
	}
	if c.replicas < 1 {
		t.Fatalf("CHAOS_REPLICAS=%d: at least one manager", c.replicas)
	}
	c.leaseFromEnv(t)
	c.wavesFromEnv(t)
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: want a number", v)
		}
		c.seed = n
	}
	return c
}

// defaultFaults are injected once each when CHAOS_FAULTS is unset (make
// test): every fault but a broker without persistence, which needs a
// broker configured otherwise (TestBrokerWithoutPersistence).
const defaultFaults = "broker-persist,minio,minio-upload,apiserver,replicas"

// faultsFromEnv reads CHAOS_FAULTS. Unset (make test), the run adds
// defaultFaults to its kills. Set, the run kills the manager only when
// CHAOS_KILLS asks to.
func (c *config) faultsFromEnv(t *testing.T) {
	faults, set := os.LookupEnv("CHAOS_FAULTS")
	if !set {
		faults = defaultFaults
	}
	var err error
	if c.faults, err = parseFaults(faults); err != nil {
		t.Fatalf("CHAOS_FAULTS: %v", err)
	}
	if set && len(c.faults) > 0 {
		c.kills = 0
	}
}

func (c *config) leaseFromEnv(t *testing.T) {
	v := os.Getenv("CHAOS_LEASE")
	if v == "" {
		return
	}
	for _, d := range strings.Split(v, ",") {
		if _, err := time.ParseDuration(d); err != nil {
			t.Fatalf("CHAOS_LEASE=%q: want lease duration, renew deadline and retry period, such as 15s,10s,2s", v)
		}
		c.lease = append(c.lease, d)
	}
}

func (c *config) wavesFromEnv(t *testing.T) {
	v := os.Getenv("CHAOS_WAVES")
	if v == "" {
		return
	}
	c.waves = nil
	for _, p := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 || n > 100 {
			t.Fatalf("CHAOS_WAVES=%q: want cumulative percentages such as 10,50,100", v)
		}
		c.waves = append(c.waves, int32(n))
	}
}

// TestManagerSIGKILL rolls firmware out to the fleet again and again while
// the manager is SIGKILLed CHAOS_KILLS times, then checks every device,
// every batch counter and reason, the UpgradeSlices, the DeviceSlices and
// the Product against the devices' record, and that no status counter ever
// went backwards.
func TestManagerSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("a chaos run takes minutes")
	}
	run(t, configFromEnv(t))
}

// TestBrokerWithoutPersistence restarts a Mosquitto that keeps nothing
// (make test's short run of the one fault TestManagerSIGKILL's default
// leaves out): what it loses is explained by its outage, nothing else.
// make chaos runs it as CHAOS_FAULTS=broker.
func TestBrokerWithoutPersistence(t *testing.T) {
	if testing.Short() {
		t.Skip("a chaos run takes minutes")
	}
	cfg := config{seed: time.Now().UnixNano(), devices: 1000, dir: os.Getenv("CHAOS_DIR"),
		waves: []int32{10, 50, 100}, replicas: 1, repeat: 1, faults: []string{"broker"}}
	run(t, cfg)
}

// run is one chaos run: rollouts while the kills and faults of cfg come,
// then the exact check.
func run(t *testing.T, cfg config) {
	ctrllog.SetLogger(logr.Discard()) // the manager logs to its own file
	t.Logf("chaos seed %d (CHAOS_SEED=%d reproduces the kill schedule and the device failures), %d kills, faults %v, %d devices",
		cfg.seed, cfg.seed, cfg.kills, cfg.faults, cfg.devices)
	ctx, cancel := context.WithTimeout(context.Background(),
		15*time.Minute+time.Duration(cfg.kills+len(cfg.faults)*cfg.repeat)*time.Minute)
	defer cancel()
	began := time.Now()
	r := startRig(ctx, t, cfg)
	r.createProduct(ctx)
	sim := r.startSimulator(ctx, cfg.devices, cfg.seed)
	w := startWatch(ctx, r.c)
	k := newKiller(r, cfg)
	kctx, stopKiller := context.WithCancel(ctx)
	go k.run(kctx)
	rounds, rolloutErr := r.rollouts(ctx, k, cfg)
	stopKiller()
	<-k.done
	if _, ok := rolloutErr.(stalled); rolloutErr != nil && !ok {
		t.Fatalf("rollout %d: %v", rounds, rolloutErr)
	}
	kills, faults, err := k.result()
	if err != nil {
		t.Fatalf("the killer: %v", err)
	}
	if _, _, err := r.waitLeader(ctx, cfg.devices, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	rep := report{seed: cfg.seed, kills: kills, faults: faults, restarts: r.restartList(), devices: cfg.devices,
		replicas: cfg.replicas, rounds: rounds, expectRestarts: slices.Contains(cfg.faults, "apiserver")}
	rep.f, rep.backwards, rep.polls = r.finalCheck(ctx, t, w, sim, lossyWindows(faults))
	if rolloutErr != nil {
		rep.f.add(kindRollout, "rollout %d: %v", rounds, rolloutErr)
	}
	rep.took = time.Since(began)
	t.Logf("\n%s%s", rep.table(), rep.details())
	verdict(t, rep)
}

// verdict fails on any mismatch, and on managers that exited by
// themselves unless an API server outage explains it (a leader that cannot
// renew its lease exits).
func verdict(t *testing.T, rep report) {
	if rep.mismatches() > 0 || len(rep.backwards) > 0 {
		t.Errorf("%d mismatches (%d devices lost, %d re-flashed, %d double-counted, %d stuck tasks, %d counters backwards)",
			rep.mismatches(), len(rep.f.lost), len(rep.f.reflashed), rep.f.double, rep.f.stuck, len(rep.backwards))
	}
	if len(rep.restarts) > 0 && !rep.expectRestarts {
		t.Errorf("%d manager processes exited by themselves", len(rep.restarts))
	}
}

// rollouts rolls version 2.0.0, 3.0.0, ... out to the whole fleet, one
// batch after the other, until the killer has done its plan and every
// upload fault was injected (one a rollout). It returns how many rollouts
// it started.
func (r *rig) rollouts(ctx context.Context, k *killer, cfg config) (int, error) {
	uploads := uploadFaults(cfg)
	for round := 1; ; round++ {
		var upload *uploadFault
		if len(uploads) > 0 {
			upload = &uploadFault{fault: uploads[0], round: round, k: k,
				delay: time.Duration(rand.New(rand.NewPCG(uint64(cfg.seed), uint64(round))).Int64N(int64(5 * time.Second)))}
			uploads = uploads[1:]
		}
		fw, err := r.pushFirmware(ctx, fmt.Sprintf("%d.0.0", round+1), upload)
		if err != nil {
			return round - 1, err
		}
		// Two fleets a minute: half a minute of pushes when nothing is down.
		ub, err := r.createBatch(ctx, fw, 2*cfg.devices, cfg.waves)
		if err != nil {
			return round - 1, err
		}
		k.round.Store(int32(round))
		err = r.waitBatch(ctx, ub, k)
		k.round.Store(0)
		if err != nil || (k.finished() && len(uploads) == 0) {
			return round, err
		}
	}
}

// uploadFaults are the run's faults injected during uploads, each repeat
// times.
func uploadFaults(cfg config) []fault {
	var out []fault
	for _, name := range cfg.faults {
		if f, _ := faultNamed(name); f.upload {
			for range cfg.repeat {
				out = append(out, f)
			}
		}
	}
	return out
}

// waitBatch waits until the batch finishes. It gives up once three minutes
// passed since the rollout started or a manager last took over, whichever
// is later: a timed-out task (1 minute), its retries and re-pushes all fit.
func (r *rig) waitBatch(ctx context.Context, ub *otav1.UpgradeBatch, k *killer) error {
	start := time.Now()
	const stall = 3 * time.Minute
	return lab.Poll(ctx, 24*time.Hour, func() (bool, error) {
		if err := r.c.Get(ctx, client.ObjectKeyFromObject(ub), ub); err == nil && finished(ub) {
			return true, nil
		}
		if since := later(start, k.since()); time.Since(since) > stall {
			return false, stalled{fmt.Sprintf("batch %s not finished %s after the last start or takeover: %s %+v",
				ub.Name, stall, ub.Status.Phase, ub.Status.Counts)}
		}
		return false, nil
	})
}

// finalCheck stops the status watch and the simulator, then checks the
// operator's records against the devices' until they agree or a minute
// passes (slices are written within a flush window, the Product's summary
// every 10 s).
func (r *rig) finalCheck(ctx context.Context, t *testing.T, w *watch, sim *simulator, lossy []window) (*findings, []string, int) {
	backwards, polls := w.stop()
	devices, sum, err := sim.stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("devicesim: %s downloads=%d ignored=%d", sum.Line(), sum.Downloads, sum.PushesIgnored)
	var f *findings
	err = lab.Poll(ctx, time.Minute, func() (bool, error) {
		s, err := readSnapshot(ctx, r.c)
		if err != nil {
			return false, nil // the API server answers again within the minute, or the check says what is missing
		}
		f = check(s, devices, sum, lossy...)
		return f.count() == 0, nil
	})
	if f == nil {
		t.Fatalf("could not read the operator's records: %v", err)
	}
	return f, backwards, polls
}

// stalled is a rollout that stopped making progress: a finding, not a
// failure of the harness.
type stalled struct{ msg string }

func (s stalled) Error() string { return s.msg }

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
