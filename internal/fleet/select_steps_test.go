package fleet

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/protocol"
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
	e := New(nil, nil, nil, staticSigner{}, Options{}, logr.Discard())
	e.ready = true
	close(e.readyCh)
	p := &otav1.Product{Spec: otav1.ProductSpec{ProductKey: "pk"}}
	p.Name, p.Namespace, p.UID = "p", "ns", "uid"
	e.SyncProduct(p)
	names := make([]string, 250)
	msgs := make([]protocol.Message, len(names))
	for i := range names {
		names[i] = fmt.Sprintf("dev-%03d", i)
		version := "1.0.0"
		if i%13 == 0 {
			version = "2.0.0"
		}
		msgs[i] = protocol.Message{Kind: protocol.KindInform, ProductKey: "pk", DeviceName: names[i], Module: "default", Version: version}
	}
	e.HandleBatch(context.Background(), msgs)
	s := Spec{Ref: otav1.CampaignReference{Kind: otav1.KindUpgradeBatch, Name: "b"}, Namespace: "ns",
		ProductKey: "pk", Module: "default", Target: "2.0.0", RatePerMinute: 10000, Timeout: time.Hour,
		Start: time.Now().Add(time.Hour), Waves: []otav1.Wave{{Percent: 10}, {Percent: 50}, {Percent: 100}},
		Image: Image{Bucket: "b", Key: "k", Size: 1, MD5: "0123456789abcdef0123456789abcdef"}}
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
