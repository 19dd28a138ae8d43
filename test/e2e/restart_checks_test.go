package e2e

// The exact end checks of the restart test: every device, every counter,
// the slices and the inventory against what the simulator recorded.

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/lab"
)

func restartWant(plans map[string]devicesim.Plan) restartCounts {
	e := restartCounts{reasons: map[string]int64{}, versions: map[string]int64{}}
	for _, p := range plans {
		x := restartExpect[p]
		e.counts.Total++
		if x.state == otav1.TaskSucceeded {
			e.counts.Succeeded++
			e.versions["2.0.0"]++
		} else {
			e.counts.Failed++
			e.reasons[x.reason]++
			e.versions["1.0.0"]++
		}
	}
	return e
}

// checkDevices: every device ended as its plan says, on the version that
// goes with it, after exactly one upgrade attempt: the batch has no
// retries, so a second attempt would be an upgrade the operator did twice.
// Pushes to a device that is still busy with its attempt are tolerated
// (QoS 1 is at-least-once; the device ignores them).
func checkDevices(t *testing.T, fleet *devicesim.Fleet, plans map[string]devicesim.Plan, s devicesim.Summary) {
	t.Helper()
	var bad []string
	for _, d := range fleet.DeviceNames() {
		st, _ := fleet.Device(d)
		x := restartExpect[plans[d]]
		version := "1.0.0"
		if x.state == otav1.TaskSucceeded {
			version = "2.0.0"
		}
		if st.Outcome != x.outcome || st.Versions[otav1.DefaultModule] != version || st.Attempts != 1 {
			bad = append(bad, fmt.Sprintf("%s: plan %s, outcome %s, version %s, %d attempts",
				d, plans[d], st.Outcome, st.Versions[otav1.DefaultModule], st.Attempts))
		}
	}
	if len(bad) > 0 {
		t.Errorf("%d devices did not end as planned, on the right version, after one attempt:\n%s", len(bad), firstFew(bad))
	}
	if s.InvalidReceived != 0 {
		t.Errorf("devices received %d messages a real device would drop", s.InvalidReceived)
	}
	if attempts := s.PushesReceived - s.PushesIgnored; attempts != int64(len(plans)) {
		t.Errorf("devices acted on %d pushes (%d received, %d ignored while busy); want one each, %d",
			attempts, s.PushesReceived, s.PushesIgnored, len(plans))
	}
}

// checkBatch: the batch's status counts exactly what the devices did.
func checkBatch(t *testing.T, ub *otav1.UpgradeBatch, want restartCounts) {
	t.Helper()
	st := ub.Status
	if st.Phase != otav1.BatchCompleted || st.Counts != want.counts {
		t.Errorf("batch %s with counts %+v; the devices say %+v", st.Phase, st.Counts, want.counts)
	}
	got := map[string]int64{}
	for _, r := range st.FailureReasons {
		got[r.Reason] += r.Count
	}
	if !maps.Equal(got, want.reasons) {
		t.Errorf("failure reasons %v; the devices say %v", got, want.reasons)
	}
	if conditionReason(st.Conditions, otav1.ConditionReady) != otav1.ReasonSucceeded {
		t.Errorf("batch conditions %+v", st.Conditions)
	}
}

// checkUpgradeSlices: the durable record agrees with the status and with
// every device. The status comes from memory and the slices are written
// within a flush interval, so they are polled until they agree.
func checkUpgradeSlices(ctx context.Context, t *testing.T, c client.Client, ub *otav1.UpgradeBatch,
	fleet *devicesim.Fleet, plans map[string]devicesim.Plan) {
	t.Helper()
	var problems []string
	var slicesSeen int
	err := lab.Poll(ctx, 30*time.Second, func() (bool, error) {
		var list otav1.UpgradeSliceList
		if err := c.List(ctx, &list, client.InNamespace(ub.Namespace), client.MatchingLabels{
			otav1.LabelCampaign: ub.Name, otav1.LabelKind: string(otav1.KindUpgradeBatch)}); err != nil {
			return false, err
		}
		slicesSeen = len(list.Items)
		problems = upgradeSliceProblems(list.Items, ub.Status.Counts, plans)
		return len(problems) == 0, nil
	})
	if err != nil {
		t.Errorf("the UpgradeSlices disagree with the status or the devices (%v):\n%s", err, firstFew(problems))
	}
	if int(ub.Status.Slices) != slicesSeen {
		t.Errorf("status says %d slices, the API server holds %d", ub.Status.Slices, slicesSeen)
	}
}

func upgradeSliceProblems(items []otav1.UpgradeSlice, counts otav1.TaskCounts, plans map[string]devicesim.Plan) []string {
	var problems []string
	var sum otav1.TaskCounts
	seen := map[string]bool{}
	for _, s := range items {
		for _, task := range s.Tasks {
			if seen[task.Device] {
				problems = append(problems, fmt.Sprintf("%s: a second task in slice %s", task.Device, s.Name))
			}
			seen[task.Device] = true
			countState(&sum, task.State)
			plan, ok := plans[task.Device]
			x := restartExpect[plan]
			if !ok || task.State != x.state || task.Reason != x.reason || task.Attempt != 1 {
				problems = append(problems, fmt.Sprintf("%s: %s %q attempt %d; the device planned %q",
					task.Device, task.State, task.Reason, task.Attempt, plan))
			}
		}
	}
	if sum != counts {
		problems = append([]string{fmt.Sprintf("tasks by state %+v, status %+v", sum, counts)}, problems...)
	}
	if len(seen) != len(plans) {
		problems = append([]string{fmt.Sprintf("%d devices have a task, the fleet has %d", len(seen), len(plans))}, problems...)
	}
	return problems
}

func countState(tc *otav1.TaskCounts, s otav1.TaskState) {
	tc.Total++
	switch s {
	case otav1.TaskConfirm:
		tc.Confirm++
	case otav1.TaskQueued:
		tc.Queued++
	case otav1.TaskNotified:
		tc.Notified++
	case otav1.TaskInProgress:
		tc.InProgress++
	case otav1.TaskSucceeded:
		tc.Succeeded++
	case otav1.TaskFailed:
		tc.Failed++
	case otav1.TaskTimedOut:
		tc.TimedOut++
	case otav1.TaskCanceled:
		tc.Canceled++
	}
}

// checkInventory: the DeviceSlices hold every device once with the version
// it runs, and the Product's status sums them.
func checkInventory(ctx context.Context, t *testing.T, c client.Client, prod *otav1.Product,
	fleet *devicesim.Fleet, want restartCounts) {
	t.Helper()
	var problems []string
	err := lab.Poll(ctx, 30*time.Second, func() (bool, error) {
		inv, err := inventoryVersions(ctx, c, prod.Namespace, prod.Spec.ProductKey)
		if err != nil {
			return false, err
		}
		problems = problems[:0]
		for _, d := range fleet.DeviceNames() {
			st, _ := fleet.Device(d)
			if got, want := inv[d], st.Versions[otav1.DefaultModule]; got != want {
				problems = append(problems, fmt.Sprintf("%s: inventory says %q, the device runs %q", d, got, want))
			}
		}
		if len(inv) != len(fleet.DeviceNames()) {
			problems = append(problems, fmt.Sprintf("%d devices in the inventory, %d in the fleet", len(inv), len(fleet.DeviceNames())))
		}
		return len(problems) == 0, nil
	})
	if err != nil {
		t.Errorf("the DeviceSlices disagree with the devices (%v):\n%s", err, firstFew(problems))
	}
	// Not asserted: the lock mirror of a device whose task ended without a
	// new version rides along with its next inventory write, by design.
	if list, err := deviceSlices(ctx, c, prod.Namespace, prod.Spec.ProductKey); err == nil {
		locked := 0
		for _, s := range list {
			for _, d := range s.Devices {
				if d.Lock != nil {
					locked++
				}
			}
		}
		t.Logf("%d inventory records still show a lock after the batch completed", locked)
	}
	// The Product controller summarizes the slices every inventory
	// interval (10 s).
	var got map[string]int64
	err = lab.Poll(ctx, 45*time.Second, func() (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(prod), prod); err != nil {
			return false, err
		}
		got = map[string]int64{}
		for _, m := range prod.Status.Modules {
			if m.Module == otav1.DefaultModule {
				for _, v := range m.Versions {
					got[v.Version] = v.Devices
				}
			}
		}
		return prod.Status.Devices == want.counts.Total && maps.Equal(got, want.versions), nil
	})
	if err != nil {
		t.Errorf("Product status: %d devices, versions %v; the devices say %d, %v (%v)",
			prod.Status.Devices, got, want.counts.Total, want.versions, err)
	}
}

// inventoryVersions reads a product's DeviceSlices: device name to the
// default module's version. A device listed twice is reported as version
// "twice".
func inventoryVersions(ctx context.Context, c client.Client, ns, pk string) (map[string]string, error) {
	list, err := deviceSlices(ctx, c, ns, pk)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, s := range list {
		for _, d := range s.Devices {
			v := ""
			for _, mv := range d.Modules {
				if mv.Module == otav1.DefaultModule {
					v = mv.Version
				}
			}
			if _, dup := out[d.Name]; dup {
				v = "twice"
			}
			out[d.Name] = v
		}
	}
	return out, nil
}

func deviceSlices(ctx context.Context, c client.Client, ns, pk string) ([]otav1.DeviceSlice, error) {
	var list otav1.DeviceSliceList
	err := c.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{otav1.LabelProductKey: pk})
	return list.Items, err
}

// firstFew shows the first few of many problems.
func firstFew(lines []string) string {
	const show = 10
	if len(lines) <= show {
		return strings.Join(lines, "\n")
	}
	return strings.Join(lines[:show], "\n") + fmt.Sprintf("\n... and %d more", len(lines)-show)
}

// managerLog collects the managers' logs and prints them if the test fails.
func managerLog(t *testing.T) logr.Logger {
	var mu sync.Mutex
	var lines []string
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			defer mu.Unlock()
			t.Logf("manager log (%d lines):\n%s", len(lines), strings.Join(slices.Clone(lines), "\n"))
		}
	})
	return funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, time.Now().Format("15:04:05.000")+" "+prefix+" "+args)
	}, funcr.Options{})
}

// describeActive logs the tasks still active and what their devices did:
// what to look at when a batch does not finish.
func describeActive(ctx context.Context, t *testing.T, c client.Client, ub *otav1.UpgradeBatch, fleet *devicesim.Fleet) {
	var list otav1.UpgradeSliceList
	if err := c.List(ctx, &list, client.InNamespace(ub.Namespace), client.MatchingLabels{otav1.LabelCampaign: ub.Name}); err != nil {
		t.Logf("listing UpgradeSlices: %v", err)
		return
	}
	var lines []string
	for _, s := range list.Items {
		for _, task := range s.Tasks {
			if task.State.Active() {
				st, _ := fleet.Device(task.Device)
				lines = append(lines, fmt.Sprintf("%s: task %s step %d attempt %d (updated %d) in %s; device %s on %s after %d attempts",
					task.Device, task.State, task.Step, task.Attempt, task.Updated, s.Name, st.Outcome,
					st.Versions[otav1.DefaultModule], st.Attempts))
			}
		}
	}
	t.Logf("%d active tasks in the UpgradeSlices:\n%s", len(lines), firstFew(lines))
}
