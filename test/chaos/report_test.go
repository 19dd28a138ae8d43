package chaos

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// report is one run's result, as the table prints it.
type report struct {
	seed     int64
	kills    []kill
	faults   []faultRun
	restarts []restart // manager processes that exited by themselves
	// expectRestarts: an API server outage may make a leader exit.
	expectRestarts bool
	devices        int
	replicas       int
	rounds         int
	f              *findings
	backwards      []string
	polls          int
	took           time.Duration
}

// mismatches counts every disagreement: the exact check's and every
// counter that went backwards.
func (r report) mismatches() int { return r.f.count() + len(r.backwards) }

// table renders the result.
func (r report) table() string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "seed\tkills\tfaults\tdevices\treplicas\trollouts\tlost\tdouble-counted\tre-flashed\tre-pushed\tstuck\t"+
		"backwards\tmismatches\trecover p50\trecover p99\tfirst push p50\tfirst push p99\t")
	var recovered, pushed []time.Duration
	for _, k := range r.kills {
		recovered = append(recovered, k.recover)
		if k.firstPush > 0 {
			pushed = append(pushed, k.firstPush)
		}
	}
	fmt.Fprintf(w, "%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t\n", r.seed, len(r.kills), len(r.faults),
		r.devices, r.replicas, r.rounds, len(r.f.lost), r.f.double, len(r.f.reflashed), r.f.repushed, r.f.stuck,
		len(r.backwards), r.mismatches(), percentile(recovered, 50), percentile(recovered, 99),
		percentile(pushed, 50), percentile(pushed, 99))
	_ = w.Flush()
	fmt.Fprintf(&b, "(%d status polls; first push measured after %d of %d kills; the run took %s)\n", r.polls,
		len(pushed), len(r.kills), r.took.Round(time.Second))
	return b.String()
}

// details lists the first few of each kind of problem.
func (r report) details() string {
	var b strings.Builder
	if len(r.backwards) > 0 {
		fmt.Fprintf(&b, "status counters that went backwards (%d):\n%s\n", len(r.backwards), firstFew(r.backwards, 10))
	}
	for _, kind := range kinds {
		if lines := r.f.problems[kind]; len(lines) > 0 {
			fmt.Fprintf(&b, "%s (%d):\n%s\n", kind, len(lines), firstFew(lines, 10))
		}
	}
	var kills []string
	for i, k := range r.kills {
		kills = append(kills, fmt.Sprintf("kill %d in rollout %d at %s, took work again after %s, first push after %s",
			i+1, k.round, k.at.Format("15:04:05.000"), k.recover.Round(time.Millisecond), k.firstPush.Round(time.Millisecond)))
	}
	fmt.Fprintf(&b, "kills:\n%s\n", firstFew(kills, 20))
	if len(r.faults) > 0 {
		fmt.Fprintf(&b, "faults:\n%s\n", strings.Join(r.faultLines(), "\n"))
	}
	if len(r.f.explained) > 0 {
		fmt.Fprintf(&b, "reports lost with a broker's state, not mismatches (%d):\n%s\n", len(r.f.explained), firstFew(r.f.explained, 20))
	}
	if len(r.restarts) > 0 {
		var lines []string
		for _, x := range r.restarts {
			lines = append(lines, fmt.Sprintf("replica %d exited by itself at %s (%v); restarted", x.replica, x.at.Format("15:04:05.000"), x.err))
		}
		fmt.Fprintf(&b, "manager restarts:\n%s\n", firstFew(lines, 20))
	}
	return b.String()
}

// faultLines describe each fault injected and how the system came back.
func (r report) faultLines() []string {
	var out []string
	for _, f := range r.faults {
		out = append(out, fmt.Sprintf("%s in rollout %d at %s: servers back after %s, the leader working after %s; %s", f.name, f.round,
			f.at.Format("15:04:05.000"), f.down.Round(100*time.Millisecond), f.back.Round(100*time.Millisecond), f.note))
	}
	return out
}

// percentile is the nearest-rank percentile of durations.
func percentile(durations []time.Duration, p int) time.Duration {
	if len(durations) == 0 {
		return 0
	}
	d := slices.Clone(durations)
	slices.Sort(d)
	rank := (p*len(d) + 99) / 100
	return d[max(rank, 1)-1].Round(100 * time.Millisecond)
}

func firstFew(lines []string, show int) string {
	if len(lines) <= show {
		return strings.Join(lines, "\n")
	}
	return strings.Join(lines[:show], "\n") + fmt.Sprintf("\n... and %d more", len(lines)-show)
}
