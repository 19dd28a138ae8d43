package chaos

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/lab"
	"github.com/otafleet/otafleet/internal/shard"
)

// handovers are the delays, from a SIGKILL or a graceful stop, until
// another replica held each product and until its batch moved again.
type handovers struct{ held, moved []time.Duration }

func (h handovers) String() string {
	return fmt.Sprintf("%d products: held by another replica p50 %s p99 %s, batch moving again p50 %s p99 %s",
		len(h.held), quantile(h.held, 0.5), quantile(h.held, 0.99), quantile(h.moved, 0.5), quantile(h.moved, 0.99))
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(ds))
	return s[min(len(s)-1, int(q*float64(len(s))))].Round(10 * time.Millisecond)
}

// disrupt SIGKILLs the replica holding the most products kills times
// while the batches run (each restarted as its pod would be), adds a
// replica, checks every replica's app API, and stops another one
// gracefully once more than half of the devices are done; it logs how
// long each handover took and returns the app API's mismatches.
func (r *rig) disrupt(ctx context.Context, lines []*line, devices, kills int, app *appAPI) int {
	total := len(lines) * devices
	var killed handovers
	for k := 1; k <= kills; k++ {
		r.waitDone(ctx, lines, total*k/(2*kills+2))
		victim, its := r.busiest(ctx)
		before := r.doneByLine(ctx, lines)
		at := time.Now()
		if err := r.managers[victim].kill(); err != nil {
			r.t.Fatal(err)
		}
		r.t.Logf("SIGKILLed replica %d holding %v", victim, slices.Sorted(maps.Keys(its)))
		if err := r.startManager(victim); err != nil {
			r.t.Fatal(err)
		}
		r.handover(ctx, "SIGKILL", at, its, lines, before, &killed)
	}
	added := r.addReplica()
	r.t.Logf("added replica %d", added)
	r.waitBalanced(ctx, len(lines), 4)
	bad := r.checkAppAPI(ctx, app, lines)
	r.waitDone(ctx, lines, total*55/100)
	stopped, its := r.busiest(ctx)
	before := r.doneByLine(ctx, lines)
	at := time.Now()
	if err := r.managers[stopped].stop(time.Minute); err != nil {
		r.t.Errorf("graceful stop of replica %d: %v", stopped, err)
	}
	r.t.Logf("stopped replica %d gracefully, holding %v", stopped, slices.Sorted(maps.Keys(its)))
	var graceful handovers
	r.handover(ctx, "graceful stop", at, its, lines, before, &graceful)
	r.t.Logf("takeover after SIGKILL (%d kills), %s", kills, killed)
	r.t.Logf("handover on a graceful stop, %s", graceful)
	return bad
}

// leases reads each product's Lease holder identity by productKey.
func (r *rig) leases(ctx context.Context) (map[string]string, error) {
	var list coordinationv1.LeaseList
	if err := r.c.List(ctx, &list, client.InNamespace(systemNS), client.MatchingLabels{shard.LabelLease: "product"}); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, l := range list.Items {
		out[l.Annotations[shard.AnnotationProductKey]] = ptr.Deref(l.Spec.HolderIdentity, "")
	}
	return out, nil
}

// busiest returns the replica holding the most products, and what it
// holds: productKey → its identity.
func (r *rig) busiest(ctx context.Context) (int, map[string]string) {
	ls, err := r.leases(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	byReplica := map[int]map[string]string{}
	for k, id := range ls {
		i := replicaOf(id)
		if byReplica[i] == nil {
			byReplica[i] = map[string]string{}
		}
		byReplica[i][k] = id
	}
	best := -1
	for i, keys := range byReplica {
		if i >= 0 && (best < 0 || len(keys) > len(byReplica[best])) {
			best = i
		}
	}
	if best < 0 {
		r.t.Fatalf("no replica holds a product: %v", ls)
	}
	return best, byReplica[best]
}

// handover waits until another identity holds each product of its and
// that product's batch progressed past before, and adds both delays from
// at to h.
func (r *rig) handover(ctx context.Context, what string, at time.Time, its map[string]string, lines []*line,
	before map[string]int64, h *handovers) {
	for _, k := range slices.Sorted(maps.Keys(its)) {
		var held, moved time.Duration
		err := lab.Poll(ctx, 2*time.Minute, func() (bool, error) {
			ls, err := r.leases(ctx)
			if err == nil && held == 0 && ls[k] != "" && ls[k] != its[k] {
				held = time.Since(at)
			}
			if held > 0 {
				done := r.doneByLine(ctx, lines)
				if done[k] > before[k] || done[k] == int64(r.lineOf(lines, k).fleetSize()) {
					moved = time.Since(at)
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			r.t.Errorf("%s: product %s not taken over: %v", what, k, err)
			continue
		}
		h.held, h.moved = append(h.held, held), append(h.moved, moved)
	}
}

func (r *rig) lineOf(lines []*line, key string) *line {
	for _, l := range lines {
		if l.key == key {
			return l
		}
	}
	r.t.Fatalf("no line %s", key)
	return nil
}

func (l *line) fleetSize() int { return len(l.fleet.DeviceNames()) }

// doneByLine reads how many tasks each line's batch finished, by key.
func (r *rig) doneByLine(ctx context.Context, lines []*line) map[string]int64 {
	out := map[string]int64{}
	for _, l := range lines {
		ub := &otav1.UpgradeBatch{}
		if err := r.c.Get(ctx, client.ObjectKeyFromObject(l.batch), ub); err == nil {
			c := ub.Status.Counts
			out[l.key] = c.Succeeded + c.Failed + c.TimedOut + c.Canceled
		}
	}
	return out
}

// waitDone waits until the batches finished n tasks in all.
func (r *rig) waitDone(ctx context.Context, lines []*line, n int) {
	err := lab.Poll(ctx, 5*time.Minute, func() (bool, error) {
		var sum int64
		for _, d := range r.doneByLine(ctx, lines) {
			sum += d
		}
		return sum >= int64(n), nil
	})
	if err != nil {
		r.t.Fatalf("the batches never finished %d tasks: %v", n, err)
	}
}

// waitLines waits until every batch reached a final phase.
func (r *rig) waitLines(ctx context.Context, lines []*line) error {
	return lab.Poll(ctx, 5*time.Minute, func() (bool, error) {
		for _, l := range lines {
			ub := &otav1.UpgradeBatch{}
			if err := r.c.Get(ctx, client.ObjectKeyFromObject(l.batch), ub); err != nil || !finished(ub) {
				return false, nil
			}
		}
		return true, nil
	})
}

// checkLine stops a line's fleet and checks the operator's records of it
// exactly against the devices' own, as the crash harness does; it returns
// the mismatches.
func (r *rig) checkLine(ctx context.Context, l *line) int {
	l.fleet.Stop()
	var devices []devicesim.DeviceStatus
	for _, name := range l.fleet.DeviceNames() {
		d, _ := l.fleet.Device(name)
		devices = append(devices, d)
	}
	sum := l.fleet.Summary()
	var f *findings
	_ = lab.Poll(ctx, time.Minute, func() (bool, error) {
		s, err := readProductSnapshot(ctx, r.c, l.ns, l.key, l.product)
		if err != nil {
			return false, nil
		}
		f = check(s, devices, sum)
		return f.count() == 0, nil
	})
	if f == nil {
		r.t.Errorf("%s: could not read the records", l.key)
		return 1
	}
	for _, kind := range kinds {
		for i, p := range f.problems[kind] {
			if i == 5 {
				r.t.Logf("%s: %s: %d more", l.key, kind, len(f.problems[kind])-5)
				break
			}
			r.t.Logf("%s: %s: %s", l.key, kind, p)
		}
	}
	r.t.Logf("%s: %s, %d mismatches", l.key, sum.Line(), f.count())
	return f.count()
}

// logReplicas logs each live replica's products, devices, CPU and heap.
func (r *rig) logReplicas(ctx context.Context) {
	ls, _ := r.leases(ctx)
	var b strings.Builder
	fmt.Fprintf(&b, "replica  products  devices  cpu s  heap MiB\n")
	for i, p := range r.managers {
		if p.exited() {
			continue
		}
		m, err := scrape(ctx, r.metrics[i])
		if err != nil {
			continue
		}
		n := 0
		for _, id := range ls {
			if replicaOf(id) == i {
				n++
			}
		}
		fmt.Fprintf(&b, "%7d  %8d  %7.0f  %5.1f  %8.1f\n", i, n, m.devices, m.cpu, m.heap/(1<<20))
	}
	r.t.Logf("replicas at the end:\n%s", b.String())
}
