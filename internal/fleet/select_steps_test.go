package fleet

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"testing"
	"time"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/rollout"
)

// A static campaign selected in steps of a few devices ends with the same
// tasks, waves, push order and counts as one selected in one step; each
// step but the last reports the selection incomplete.
func TestSelectionInStepsEqualsOneStep(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Spec, []string)
	}{
		{"whole fleet, waves", func(s *Spec, _ []string) {}},
		{"list with waves", func(s *Spec, names []string) { s.Devices = append(slices.Clone(names[100:220]), "missing-1") }},
		{"list without waves", func(s *Spec, names []string) {
			s.Devices, s.Waves = append(slices.Clone(names[:150]), "missing-1"), nil
		}},
		{"gray percentage", func(s *Spec, _ []string) { s.GrayPercent = 30 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			one, steps := pendingCampaign(t, tc.edit), pendingCampaign(t, tc.edit)
			if !one.e.selectSome(one.c, time.Now(), math.MaxInt) {
				t.Fatal("a selection without a budget is not complete")
			}
			n := 0
			for !steps.e.selectSome(steps.c, time.Now(), 7) {
				if n++; n > 1000 {
					t.Fatal("the selection in steps never completes")
				}
			}
			if n < 2 {
				t.Fatalf("selected in %d steps; the test wants several", n+1)
			}
			if len(one.c.tasks) < 50 {
				t.Fatalf("only %d tasks selected", len(one.c.tasks))
			}
			if a, b := one.view(), steps.view(); a != b {
				t.Fatalf("in steps:\n%s\nin one step:\n%s", b, a)
			}
		})
	}
}

type pending struct {
	e *Engine
	c *campaign
}

// pendingCampaign is an engine with 250 devices (3 DeviceSlices), 20 of
// them on the target already, and a static batch in waves whose start
// has not come.
func pendingCampaign(t *testing.T, edit func(*Spec, []string)) pending {
	names := make([]string, 250)
	for i := range names {
		names[i] = fmt.Sprintf("dev-%03d", i)
	}
	e := memFleet(names, func(i int) string {
		if i%13 == 0 {
			return "2.0.0"
		}
		return "1.0.0"
	})
	s := memSpec()
	s.Start, s.Waves = time.Now().Add(time.Hour), []otav1.Wave{{Percent: 10}, {Percent: 50}, {Percent: 100}}
	edit(&s, names)
	if _, err := e.Upsert(s); err != nil {
		t.Fatal(err)
	}
	var c *campaign
	for _, c = range e.campaigns {
	}
	if len(c.tasks) != 0 {
		t.Fatalf("selected before the start: %d tasks", len(c.tasks))
	}
	c.spec.Start = time.Time{}
	return pending{e, c}
}

// view prints what selection decided: each task, the push order, the
// counts and the names the inventory lacks.
func (p pending) view() string {
	out := ""
	for _, name := range slices.Sorted(maps.Keys(p.c.tasks)) {
		tk := p.c.tasks[name]
		out += fmt.Sprintf("%s %s wave %d %s\n", name, tk.state, tk.wave, tk.reason)
	}
	for _, tk := range p.c.queue {
		out += tk.dev.name + " "
	}
	return out + fmt.Sprintf("\ncounts %+v unknown %d %v", p.c.counts, p.c.unknown, p.c.unknownExamples)
}

// A static campaign's tasks walked a few at a time end with the same
// timeouts and the same wave counts as one walk; the counts change only
// when the walk is complete.
func TestScanInStepsEqualsOneWalk(t *testing.T) {
	one, steps := pendingCampaign(t, func(*Spec, []string) {}), pendingCampaign(t, func(*Spec, []string) {})
	now := time.Now()
	for _, p := range []pending{one, steps} {
		p.e.selectSome(p.c, now, math.MaxInt)
		p.c.stage = rollout.Selected
		for name, tk := range p.c.tasks {
			switch {
			case name < "dev-050":
				p.e.setState(tk, otav1.TaskInProgress, now)
				tk.started = now.Add(-2 * time.Hour).UnixMilli() // past the 1 h timeout
			case name < "dev-120" && name[len(name)-1]%2 == 0:
				p.e.setState(tk, otav1.TaskSucceeded, now)
			}
		}
	}
	one.e.scan(one.c, now, math.MaxInt)
	walks := 0
	for {
		steps.e.scan(steps.c, now, 7)
		walks++
		if steps.c.walk.next == 0 {
			break
		}
		if steps.c.scanned {
			t.Fatalf("wave counts taken after %d steps of an incomplete walk", walks)
		}
	}
	if walks < 2 {
		t.Fatalf("walked in %d step; the test wants several", walks)
	}
	counted := int64(0)
	for _, ws := range steps.c.waveStats {
		counted += ws.Active + ws.Finished + ws.Soaking
	}
	if counted != int64(len(steps.c.tasks)) {
		t.Fatalf("the walk counted %d tasks of %d", counted, len(steps.c.tasks))
	}
	if one.c.counts.TimedOut == 0 || one.c.counts.Succeeded == 0 || !slices.Equal(one.c.waveStats, steps.c.waveStats) {
		t.Fatalf("wave counts in steps %+v, in one walk %+v (timed out %d, succeeded %d)", steps.c.waveStats, one.c.waveStats, one.c.counts.TimedOut, one.c.counts.Succeeded)
	}
	if a, b := one.view(), steps.view(); a != b {
		t.Fatalf("in steps:\n%s\nin one walk:\n%s", b, a)
	}
}
