package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"hash/fnv"
	"maps"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/lab"
)

// waitLong bounds a wait for something the expected path does in a few
// seconds: the machine is shared, so the margin is wide.
const waitLong = 60 * time.Second

// scene is one scenario's corner of a shared lab: its own namespace,
// Product and product key, so that scenarios run side by side without
// seeing each other's devices or batches.
type scene struct {
	t      *testing.T
	l      *lab.Lab
	ctx    context.Context
	ns, pk string
	fleets []*devicesim.Fleet
}

// newScene creates the namespace sc-<name> with a Product "plug" of
// product key pk<name>, and waits until the engine knows the product.
func newScene(t *testing.T, l *lab.Lab, name string) *scene {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	s := &scene{t: t, l: l, ctx: ctx, ns: "sc-" + name, pk: "pk" + name}
	prod := &otav1.Product{ObjectMeta: lab.ObjectMeta(s.ns, "plug"), Spec: otav1.ProductSpec{ProductKey: s.pk}}
	if err := l.CreateProduct(ctx, prod); err != nil {
		t.Fatal(err)
	}
	return s
}

// startFleet starts a simulated fleet of the scene's product on the lab's
// broker (progress every 50 ms unless cfg says otherwise) and waits until
// every device informed its versions.
func (s *scene) startFleet(cfg devicesim.Config) *devicesim.Fleet {
	s.t.Helper()
	cfg.ProductKey = s.pk
	cfg = s.l.FleetConfig(cfg)
	if cfg.ProgressInterval == 0 {
		cfg.ProgressInterval = 50 * time.Millisecond
	}
	f, err := devicesim.Start(s.ctx, cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(f.Stop)
	s.fleets = append(s.fleets, f)
	ctx, cancel := context.WithTimeout(s.ctx, waitLong)
	defer cancel()
	if err := f.WaitInformed(ctx); err != nil {
		s.t.Fatal(err)
	}
	return f
}

// firmware uploads a random 48 KiB image as version of the default module
// (Sha256-signed, no verification run needed) and returns the Firmware's
// name once it is Ready.
func (s *scene) firmware(version string) string {
	s.t.Helper()
	image := make([]byte, 48<<10)
	_, _ = rand.Read(image)
	fw := &otav1.Firmware{ObjectMeta: lab.ObjectMeta(s.ns, "plug-"+version), Spec: otav1.FirmwareSpec{
		Product: "plug", Version: version, SignMethod: otav1.SignMethodSHA256, VerificationRequired: ptr.To(false)}}
	if err := s.l.PushFirmware(s.ctx, fw, image); err != nil {
		s.t.Fatalf("pushing firmware %s: %v", version, err)
	}
	return fw.Name
}

// batch creates an UpgradeBatch of firmware; spec, if set, fills in the
// rest of its spec.
func (s *scene) batch(name, firmware string, spec func(*otav1.UpgradeBatchSpec)) *otav1.UpgradeBatch {
	s.t.Helper()
	ub := &otav1.UpgradeBatch{ObjectMeta: lab.ObjectMeta(s.ns, name), Spec: otav1.UpgradeBatchSpec{Firmware: firmware}}
	if spec != nil {
		spec(&ub.Spec)
	}
	if err := s.l.Client().Create(s.ctx, ub); err != nil {
		s.t.Fatalf("creating batch %s: %v", name, err)
	}
	return ub
}

// update changes a batch's spec, as `kubectl edit` would.
func (s *scene) update(ub *otav1.UpgradeBatch, change func(*otav1.UpgradeBatchSpec)) {
	s.t.Helper()
	c := s.l.Client()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.Get(s.ctx, client.ObjectKeyFromObject(ub), ub); err != nil {
			return err
		}
		change(&ub.Spec)
		return c.Update(s.ctx, ub)
	})
	if err != nil {
		s.t.Fatalf("updating batch %s: %v", ub.Name, err)
	}
}

// refresh reads the batch's latest state.
func (s *scene) refresh(ub *otav1.UpgradeBatch) {
	s.t.Helper()
	if err := s.l.Client().Get(s.ctx, client.ObjectKeyFromObject(ub), ub); err != nil {
		s.t.Fatal(err)
	}
}

// wait polls the batch until cond holds, and fails the test with the
// batch's status and the fleets' summaries if that does not happen within
// timeout. Every status the batch shows must have counters that add up:
// the engine computes them in one snapshot, and the controller's patch is
// guarded against a stale cached copy.
func (s *scene) wait(ub *otav1.UpgradeBatch, what string, timeout time.Duration, cond func(*otav1.UpgradeBatch) bool) {
	s.t.Helper()
	var broken string
	err := s.l.WaitBatch(s.ctx, ub, timeout, func(b *otav1.UpgradeBatch) bool {
		if !addsUp(b.Status.Counts) {
			broken = fmt.Sprintf("%+v", b.Status.Counts)
			return true
		}
		return cond(b)
	}, nil)
	if broken != "" {
		s.t.Fatalf("waiting for %s: batch %s shows counters that do not add up: %s", what, ub.Name, broken)
	}
	if err != nil {
		s.t.Fatalf("waiting for %s: %v\n%s", what, err, s.describe(ub))
	}
}

// addsUp: every selected device has its task in exactly one state.
func addsUp(c otav1.TaskCounts) bool {
	return activeCount(c)+c.Succeeded+c.Failed+c.TimedOut+c.Canceled+c.Reverted == c.Total
}

// waitFleet waits until cond holds for the fleet's summary.
func (s *scene) waitFleet(f *devicesim.Fleet, what string, cond func(devicesim.Summary) bool) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, waitLong)
	defer cancel()
	if err := f.Wait(ctx, cond); err != nil {
		s.t.Fatalf("waiting for %s: %v", what, err)
	}
}

// holds checks cond on every poll for the whole of window and fails at the
// first poll where it does not hold. It is for asserting that something
// does NOT happen (nothing is pushed while paused), which no wait can
// show; callers say why their window is long enough.
func (s *scene) holds(window time.Duration, what string, cond func() error) {
	s.t.Helper()
	var failed error
	_ = lab.Poll(s.ctx, window, func() (bool, error) {
		failed = cond()
		return failed != nil, nil
	})
	if failed != nil {
		s.t.Fatalf("%s: %v", what, failed)
	}
}

// wantCounts compares every counter of a batch with want.
func (s *scene) wantCounts(ub *otav1.UpgradeBatch, want otav1.TaskCounts) {
	s.t.Helper()
	if ub.Status.Counts != want {
		s.t.Fatalf("batch %s counts:\n got %+v\nwant %+v\n%s", ub.Name, ub.Status.Counts, want, s.describe(ub))
	}
}

// wantReasons compares a batch's failure reasons, by code, with want.
func (s *scene) wantReasons(ub *otav1.UpgradeBatch, want map[string]int64) {
	s.t.Helper()
	got := map[string]int64{}
	for _, r := range ub.Status.FailureReasons {
		got[r.Reason] = r.Count
	}
	maps.DeleteFunc(want, func(_ string, n int64) bool { return n == 0 })
	if !maps.Equal(got, want) {
		s.t.Fatalf("batch %s failure reasons %v, want %v\n%s", ub.Name, got, want, s.describe(ub))
	}
}

func (s *scene) describe(ub *otav1.UpgradeBatch) string {
	st := ub.Status
	out := fmt.Sprintf("batch %s: phase %s wave %d/%d counts %+v reasons %+v conditions %+v",
		ub.Name, st.Phase, st.CurrentWave, st.Waves, st.Counts, st.FailureReasons, st.Conditions)
	for _, f := range s.fleets {
		out += "\nfleet: " + f.Summary().Line()
	}
	return out
}

// devices describes every device of a fleet: the simulator's view and the
// engine's task, for failure messages.
func (s *scene) devices(f *devicesim.Fleet) string {
	var b strings.Builder
	for _, name := range f.DeviceNames() {
		d, _ := f.Device(name)
		fmt.Fprintf(&b, "%s: %s attempts %d outcome %s", name, d.Versions, d.Attempts, d.Outcome)
		tasks, known := s.l.Parts.Engine.DeviceTasks(s.pk, name)
		for _, task := range tasks {
			fmt.Fprintf(&b, "; task %s/%s %s step %d %s %s", task.Namespace, task.Campaign.Name, task.State, task.Step, task.Reason, task.Message)
		}
		if !known {
			b.WriteString("; unknown to the engine")
		}
		b.WriteString("\n")
	}
	var us otav1.UpgradeSliceList
	_ = s.l.Client().List(s.ctx, &us, client.InNamespace(s.ns))
	for _, sl := range us.Items {
		fmt.Fprintf(&b, "slice %s:", sl.Name)
		for _, task := range sl.Tasks {
			fmt.Fprintf(&b, " %s/w%d/%s", task.Device, task.Wave, task.State)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// deviceState returns the named device's state in the fleet.
func (s *scene) deviceState(f *devicesim.Fleet, name string) devicesim.DeviceStatus {
	s.t.Helper()
	d, ok := f.Device(name)
	if !ok {
		s.t.Fatalf("no device %s in the fleet", name)
	}
	return d
}

// byPlan groups the fleet's devices by their plan for the first attempt.
func byPlan(f *devicesim.Fleet) map[devicesim.Plan][]string {
	out := map[devicesim.Plan][]string{}
	for _, n := range f.DeviceNames() {
		out[f.Plan(n)] = append(out[f.Plan(n)], n)
	}
	return out
}

// reasonOf is the failure reason the engine records for a device that
// failed with plan p, and the start of the description the device sends.
func reasonOf(p devicesim.Plan) (reason, desc string) {
	switch p {
	case devicesim.PlanUpgradeFail:
		return otav1.FailureUpgrade, "upgrade failed"
	case devicesim.PlanDownloadFail:
		return otav1.FailureDownload, "download failed"
	case devicesim.PlanDigestMismatch:
		return otav1.FailureVerification, "verify failed"
	case devicesim.PlanFlashFail:
		return otav1.FailureFlash, "flash failed"
	}
	return "", ""
}

func activeCount(c otav1.TaskCounts) int64 {
	return c.Confirm + c.Queued + c.Notified + c.InProgress + c.Soaking
}

// condition returns the batch's condition of type typ, or an empty one.
func condition(ub *otav1.UpgradeBatch, typ string) metav1.Condition {
	if c := apimeta.FindStatusCondition(ub.Status.Conditions, typ); c != nil {
		return *c
	}
	return metav1.Condition{}
}

func planOfReason(reason string) devicesim.Plan {
	for _, p := range []devicesim.Plan{devicesim.PlanUpgradeFail, devicesim.PlanDownloadFail,
		devicesim.PlanDigestMismatch, devicesim.PlanFlashFail} {
		if r, _ := reasonOf(p); r == reason {
			return p
		}
	}
	return ""
}

// grayBucket is the engine's documented stable hash: FNV-1a of
// "productKey/deviceName", modulo 100; a device is in a gray release of p%
// when its bucket is below p.
func grayBucket(productKey, name string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(productKey + "/" + name))
	return h.Sum32() % 100
}
