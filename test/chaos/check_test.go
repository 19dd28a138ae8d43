package chaos

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/devicesim"
)

// findings are what the exact check found, against the simulator's record
// of what every device did.
type findings struct {
	lost      map[string]bool     // devices whose last report no durable record shows
	double    int64               // devices counted more than once, or above what devices did
	reflashed map[string]bool     // devices that flashed the same image twice
	repushed  int                 // attempts devices made that no task counts
	stuck     int                 // tasks still QUEUED, NOTIFIED or IN_PROGRESS at the end
	problems  map[string][]string // every mismatch, one line each, by kind
	// lossy are the windows in which a broker without persistence may
	// lose what devices report; explained are the disagreements such a
	// loss accounts for, and nothing else does (not mismatches).
	lossy     []window
	explained []string
}

// window is a span of time: a broker outage, from its start until the
// leader's gateway subscribed again.
type window struct{ from, to time.Time }

// lossyAt: a report sent at t fell in one of the lossy windows.
func (f *findings) lossyAt(t time.Time) bool {
	for _, w := range f.lossy {
		if !t.Before(w.from) && !t.After(w.to) {
			return true
		}
	}
	return false
}

// Kinds of mismatch, in the order the report lists them.
var kinds = []string{kindRollout, kindStuck, kindLost, kindReflash, kindRepush, kindRetry, kindUnpushed, kindCounts,
	kindDuplicate, kindInventory, kindProduct, kindContract}

const (
	kindRollout   = "rollouts that never finished"
	kindStuck     = "tasks left active"
	kindLost      = "tasks that disagree with their device's last attempt"
	kindReflash   = "devices that flashed an image twice"
	kindRepush    = "tasks that count fewer attempts than their device made"
	kindRetry     = "devices that failed for good before their retries were used"
	kindUnpushed  = "devices never pushed the image"
	kindCounts    = "batch status against the devices and the UpgradeSlices"
	kindDuplicate = "devices recorded twice"
	kindInventory = "DeviceSlices against the devices"
	kindProduct   = "the Product's version distribution"
	kindContract  = "messages a real device would drop"
)

func newFindings() *findings {
	return &findings{lost: map[string]bool{}, reflashed: map[string]bool{}, problems: map[string][]string{}}
}

func (f *findings) add(kind, format string, args ...any) {
	f.problems[kind] = append(f.problems[kind], fmt.Sprintf(format, args...))
}

// count is the number of mismatches of every kind.
func (f *findings) count() int {
	n := 0
	for _, lines := range f.problems {
		n += len(lines)
	}
	return n
}

// taskWant is the final state and reason a task must have.
type taskWant struct {
	state  otav1.TaskState
	reason string
}

// outcomeTask is the task a device's last attempt must have left.
var outcomeTask = map[devicesim.Outcome]taskWant{
	devicesim.OutcomeSucceeded:      {otav1.TaskSucceeded, ""},
	devicesim.OutcomeDownloadFailed: {otav1.TaskFailed, otav1.FailureDownload},
	devicesim.OutcomeFlashFailed:    {otav1.TaskFailed, otav1.FailureFlash},
	devicesim.OutcomeDigestMismatch: {otav1.TaskFailed, otav1.FailureVerification},
	devicesim.OutcomeUpgradeFailed:  {otav1.TaskFailed, otav1.FailureUpgrade},
}

// attemptsAt returns a device's attempts at one image of the default module.
func attemptsAt(d devicesim.DeviceStatus, version string) []devicesim.Attempt {
	var out []devicesim.Attempt
	for _, a := range d.History {
		if a.Module == otav1.DefaultModule && a.Version == version {
			out = append(out, a)
		}
	}
	return out
}

// snapshot is the operator's records read back from the API server.
type snapshot struct {
	batches []otav1.UpgradeBatch
	tasks   map[string][]otav1.UpgradeSlice // batch → its slices
	devices []otav1.DeviceSlice
	product otav1.Product
}

func readSnapshot(ctx context.Context, c client.Client) (*snapshot, error) {
	return readProductSnapshot(ctx, c, ns, productKey, product)
}

// readProductSnapshot reads the records of one product, alone in its
// namespace.
func readProductSnapshot(ctx context.Context, c client.Client, ns, productKey, product string) (*snapshot, error) {
	s := &snapshot{tasks: map[string][]otav1.UpgradeSlice{}}
	var ubs otav1.UpgradeBatchList
	if err := c.List(ctx, &ubs, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	s.batches = ubs.Items
	var us otav1.UpgradeSliceList
	if err := c.List(ctx, &us, client.InNamespace(ns), client.MatchingLabels{otav1.LabelKind: string(otav1.KindUpgradeBatch)}); err != nil {
		return nil, err
	}
	for _, sl := range us.Items {
		s.tasks[sl.Campaign.Name] = append(s.tasks[sl.Campaign.Name], sl)
	}
	var ds otav1.DeviceSliceList
	if err := c.List(ctx, &ds, client.InNamespace(ns), client.MatchingLabels{otav1.LabelProductKey: productKey}); err != nil {
		return nil, err
	}
	s.devices = ds.Items
	return s, c.Get(ctx, client.ObjectKey{Namespace: ns, Name: product}, &s.product)
}

// check compares the snapshot with the devices' record, exactly; a report
// sent in a lossy window may be missing in the one way its loss explains.
func check(s *snapshot, devices []devicesim.DeviceStatus, sum devicesim.Summary, lossy ...window) *findings {
	f := newFindings()
	f.lossy = lossy
	for i := range s.batches {
		checkBatch(f, &s.batches[i], s.tasks[s.batches[i].Name], devices)
	}
	versions := checkInventory(f, s.devices, devices)
	checkProduct(f, &s.product, versions)
	checkReflashes(f, devices)
	if sum.InvalidReceived != 0 || sum.ContractViolations != 0 {
		f.add(kindContract, "devices received %d invalid messages and %d contract violations %v", sum.InvalidReceived,
			sum.ContractViolations, sum.Violations)
	}
	return f
}

// checkBatch: every task against its device, the slices against the
// status, and the status's counters and reasons against the devices.
func checkBatch(f *findings, ub *otav1.UpgradeBatch, slices []otav1.UpgradeSlice, devices []devicesim.DeviceStatus) {
	version := ub.Name[len("to-"):]
	tasks, sum := map[string]otav1.DeviceTask{}, otav1.TaskCounts{}
	for _, sl := range slices {
		for _, task := range sl.Tasks {
			if _, dup := tasks[task.Device]; dup {
				f.double++
				f.add(kindDuplicate, "%s %s: a second task, in %s", ub.Name, task.Device, sl.Name)
			}
			tasks[task.Device] = task
			countState(&sum, task.State)
			if task.State.Active() {
				f.stuck++
			}
		}
	}
	var want otav1.TaskCounts
	reasons := map[string]int64{}
	for _, d := range devices {
		task, ok := tasks[d.Name]
		as := attemptsAt(d, version)
		x := checkTask(f, ub.Name, d, as, task, ok)
		checkRetries(f, ub, d.Name, as, x)
		countState(&want, x.state)
		if x.reason != "" {
			reasons[x.reason]++
		}
	}
	if len(tasks) != len(devices) {
		f.add(kindCounts, "%s: %d tasks for %d devices", ub.Name, len(tasks), len(devices))
	}
	if sum != ub.Status.Counts {
		f.add(kindCounts, "%s: the UpgradeSlices count %+v, the status %+v", ub.Name, sum, ub.Status.Counts)
	}
	if int(ub.Status.Slices) != len(slices) {
		f.add(kindCounts, "%s: status says %d slices, the API server holds %d", ub.Name, ub.Status.Slices, len(slices))
	}
	checkCounts(f, ub, want, reasons)
}

// checkTask compares one device's task with the device's attempts at the
// batch's image and returns the task the device's record calls for.
func checkTask(f *findings, batch string, d devicesim.DeviceStatus, attempts []devicesim.Attempt,
	task otav1.DeviceTask, ok bool) taskWant {
	if len(attempts) == 0 {
		f.add(kindUnpushed, "%s %s: the device was never pushed the image; task %+v", batch, d.Name, task)
		return taskWant{}
	}
	last := attempts[len(attempts)-1]
	want, finished := outcomeTask[last.Outcome]
	switch {
	case !ok:
		f.lost[d.Name] = true
		f.add(kindLost, "%s %s: no task; the device ended %s", batch, d.Name, last.Outcome)
	case !finished:
		f.lost[d.Name] = true
		f.add(kindLost, "%s %s: the batch ended while the device was %s", batch, d.Name, last.Outcome)
	case task.State.Active():
		f.lost[d.Name] = true
		f.add(kindStuck, "%s %s: task still %s; the device ended %s", batch, d.Name, task.State, last.Outcome)
	case task.State != want.state && task.State == otav1.TaskTimedOut && f.lossyAt(last.Reported):
		// The report that ended the attempt was lost with the broker's
		// state: the task could only time out.
		f.explained = append(f.explained, fmt.Sprintf("%s %s: task TIMED_OUT; the device ended %s with a report sent at %s",
			batch, d.Name, last.Outcome, last.Reported.Format("15:04:05.000")))
		want = taskWant{task.State, task.Reason}
	case task.State != want.state || task.Reason != want.reason:
		f.lost[d.Name] = true
		f.add(kindLost, "%s %s: task %s %q; the device ended %s", batch, d.Name, task.State, task.Reason, last.Outcome)
	}
	if ok && int(task.Attempt) != len(attempts) {
		f.repushed += max(0, len(attempts)-int(task.Attempt))
		f.add(kindRepush, "%s %s: task at attempt %d; the device made %d attempts %+v; task %+v", batch, d.Name, task.Attempt, len(attempts), attempts, task)
	}
	return want
}

// checkRetries: a device whose failure is final used every attempt the
// batch's retry policy gives it.
func checkRetries(f *findings, ub *otav1.UpgradeBatch, device string, attempts []devicesim.Attempt, want taskWant) {
	allowed := 1
	if ub.Spec.Retry != nil {
		allowed += int(ub.Spec.Retry.Count)
	}
	if want.state == otav1.TaskFailed && len(attempts) != allowed {
		f.add(kindRetry, "%s %s: failed for good after %d attempts; the batch allows %d", ub.Name, device, len(attempts), allowed)
	}
}

// checkCounts: the batch's status counts what the devices did.
func checkCounts(f *findings, ub *otav1.UpgradeBatch, want otav1.TaskCounts, reasons map[string]int64) {
	st := ub.Status
	if st.Phase != otav1.BatchCompleted {
		f.add(kindCounts, "%s: phase %s, not Completed", ub.Name, st.Phase)
	}
	if st.Counts != want {
		f.add(kindCounts, "%s: status counts %+v; the devices say %+v", ub.Name, st.Counts, want)
	}
	f.double += max(0, st.Counts.Succeeded-want.Succeeded) + max(0, st.Counts.Failed-want.Failed)
	got := map[string]int64{}
	for _, r := range st.FailureReasons {
		got[r.Reason] += r.Count
	}
	if !maps.Equal(got, reasons) {
		f.add(kindCounts, "%s: failure reasons %v; the devices say %v", ub.Name, got, reasons)
	}
}

// checkInventory: the DeviceSlices hold every device once, on the version
// it runs, or on the one it ran before when the inform of its last flash
// was sent in a lossy window. It returns each device's version as checked.
func checkInventory(f *findings, slices []otav1.DeviceSlice, devices []devicesim.DeviceStatus) map[string]string {
	inv := map[string]string{}
	for _, s := range slices {
		for _, rec := range s.Devices {
			if _, dup := inv[rec.Name]; dup {
				f.double++
				f.add(kindDuplicate, "inventory: %s twice", rec.Name)
			}
			inv[rec.Name] = moduleVersion(rec.Modules)
		}
	}
	versions := map[string]string{}
	for _, d := range devices {
		got, want := inv[d.Name], d.Versions[otav1.DefaultModule]
		versions[d.Name] = want
		if got == want {
			continue
		}
		if before, at := lastFlash(d); f.lossyAt(at) && got == before {
			f.explained = append(f.explained, fmt.Sprintf("inventory: %s on %q; the device runs %q since an inform sent at %s",
				d.Name, got, want, at.Format("15:04:05.000")))
			versions[d.Name] = got
			continue
		}
		f.lost[d.Name] = true
		f.add(kindInventory, "inventory: %s on %q; the device runs %q", d.Name, got, want)
	}
	if len(inv) != len(devices) {
		f.add(kindInventory, "inventory: %d devices; the fleet has %d", len(inv), len(devices))
	}
	return versions
}

// initialVersion is what devicesim's devices run before any upgrade.
const initialVersion = "1.0.0"

// lastFlash returns the version a device ran before its last flash of the
// default module, and when it reported that flash.
func lastFlash(d devicesim.DeviceStatus) (before string, at time.Time) {
	before, current := initialVersion, initialVersion
	for _, a := range d.History {
		if a.Flashed && a.Module == otav1.DefaultModule {
			before, current, at = current, a.Version, a.Reported
		}
	}
	return before, at
}

func moduleVersion(mvs []otav1.ModuleVersion) string {
	for _, mv := range mvs {
		if mv.Module == otav1.DefaultModule {
			return mv.Version
		}
	}
	return ""
}

// checkProduct: the Product's version distribution is the devices' (as
// checkInventory accepted them).
func checkProduct(f *findings, p *otav1.Product, versions map[string]string) {
	want := map[string]int64{}
	for _, v := range versions {
		want[v]++
	}
	got := map[string]int64{}
	for _, m := range p.Status.Modules {
		if m.Module == otav1.DefaultModule {
			for _, v := range m.Versions {
				got[v.Version] = v.Devices
			}
		}
	}
	if p.Status.Devices != int64(len(versions)) || !maps.Equal(got, want) {
		f.add(kindProduct, "Product: %d devices, versions %v; the devices say %d, %v", p.Status.Devices, got, len(versions), want)
	}
}

// checkReflashes: no device wrote the same image twice.
func checkReflashes(f *findings, devices []devicesim.DeviceStatus) {
	for _, d := range devices {
		flashes := map[string]int{}
		for _, a := range d.History {
			if a.Flashed {
				flashes[a.Module+" "+a.Version]++
			}
		}
		for _, img := range slices.Sorted(maps.Keys(flashes)) {
			if flashes[img] > 1 {
				f.reflashed[d.Name] = true
				f.add(kindReflash, "%s flashed %s %d times", d.Name, img, flashes[img])
			}
		}
	}
}

func countState(tc *otav1.TaskCounts, s otav1.TaskState) {
	tc.Total++
	for st, n := range map[otav1.TaskState]*int64{otav1.TaskConfirm: &tc.Confirm, otav1.TaskQueued: &tc.Queued,
		otav1.TaskNotified: &tc.Notified, otav1.TaskInProgress: &tc.InProgress, otav1.TaskSucceeded: &tc.Succeeded,
		otav1.TaskFailed: &tc.Failed, otav1.TaskTimedOut: &tc.TimedOut, otav1.TaskCanceled: &tc.Canceled} {
		if s == st {
			*n++
		}
	}
}
