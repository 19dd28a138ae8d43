package e2e

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/lab"
)

// TestRestartDuringSoak restarts the manager while every device soaks and
// some roll back (the simulator's revert plan, some of them while the
// manager is down): the new manager ends each soak when the old one would
// have (the soak start is in the UpgradeSlices), catches every revert, and
// the batch's counts are exactly what the devices' plans say.
func TestRestartDuringSoak(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// Mosquitto: the embedded Mochi loses QoS 1 messages published while the
	// restarted gateway resumes its session (docs/brokers.md), and this
	// test counts every device exactly.
	l, err := lab.Start(ctx, lab.Options{Log: managerLog(t), Mosquitto: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	s := newScene(t, l, "soakrestart")
	f := s.startFleet(devicesim.Config{Devices: 40, Seed: 9,
		Failures: devicesim.Failures{Revert: 0.3, RevertAfter: 8 * time.Second}})
	reverting := int64(len(byPlan(f)[devicesim.PlanRevert]))
	if reverting == 0 || reverting == 40 {
		t.Fatalf("seed 9 gives %d of 40 devices the revert plan; pick another seed", reverting)
	}
	const soak = 15 * time.Second
	ub := s.batch("soak", s.firmware("2.0.0"), func(spec *otav1.UpgradeBatchSpec) {
		spec.Soak = &metav1.Duration{Duration: soak}
	})
	// Restart once every device's soak start is on the API server.
	var before map[string]otav1.DeviceTask
	if err := lab.Poll(ctx, waitLong, func() (bool, error) {
		before = soakRecords(ctx, t, l.Client(), s.ns, "soak")
		return len(before) == 40, nil
	}); err != nil {
		t.Fatalf("the soaks were never all recorded (%d of 40):\n%s", len(before), s.describe(ub))
	}
	if err := l.RestartManager(ctx); err != nil {
		t.Fatalf("restarting the manager: %v", err)
	}
	s.wait(ub, "the batch to complete after the restart", waitLong, lab.Finished)
	s.wantCounts(ub, otav1.TaskCounts{Total: 40, Succeeded: 40 - reverting, Reverted: reverting})
	s.wantReasons(ub, map[string]int64{otav1.FailureReverted: reverting})
	// Status comes from memory; the slices follow within a flush.
	var after map[string]otav1.DeviceTask
	_ = lab.Poll(ctx, waitLong, func() (bool, error) {
		after = soakRecords(ctx, t, l.Client(), s.ns, "soak")
		for _, a := range after {
			if a.State == otav1.TaskSoaking {
				return false, nil
			}
		}
		return len(after) == 40, nil
	}) // the checks below say what is wrong
	for name, a := range after {
		b := before[name]
		if a.SoakStart != b.SoakStart {
			t.Errorf("%s: soak started at %d before the restart, %d after", name, b.SoakStart, a.SoakStart)
		}
		wantState := map[bool]otav1.TaskState{true: otav1.TaskFailed, false: otav1.TaskSucceeded}[f.Plan(name) == devicesim.PlanRevert]
		if a.State != wantState || (a.State == otav1.TaskSucceeded && a.Updated < a.SoakStart+int64(soak/time.Second)) {
			t.Errorf("%s (plan %s): recorded %+v", name, f.Plan(name), a)
		}
	}
}

// soakRecords reads a campaign's task records that carry a soak start.
func soakRecords(ctx context.Context, t *testing.T, c client.Client, ns, campaign string) map[string]otav1.DeviceTask {
	t.Helper()
	var list otav1.UpgradeSliceList
	if err := c.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{otav1.LabelCampaign: campaign}); err != nil {
		t.Fatal(err)
	}
	out := map[string]otav1.DeviceTask{}
	for _, sl := range list.Items {
		for _, task := range sl.Tasks {
			if task.SoakStart != 0 {
				out[task.Device] = task
			}
		}
	}
	return out
}
