package rollout

import (
	"testing"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

func TestSelect(t *testing.T) {
	base := Candidate{InScope: true, Reported: true, Version: "1.0", Target: "2.0"}
	with := func(f func(*Candidate)) Candidate { c := base; f(&c); return c }
	cases := []struct {
		name string
		c    Candidate
		want Selection
	}{
		{"free device on an old version", base, Selection{Verdict: Take}},
		{"out of scope", with(func(c *Candidate) { c.InScope = false }), Selection{Verdict: Skip}},
		{"out of scope, strict: still nothing", with(func(c *Candidate) { c.InScope, c.Strict = false, true }), Selection{Verdict: Skip}},
		{"module never reported", with(func(c *Candidate) { c.Reported = false }), Selection{Verdict: Skip}},
		{"module never reported, strict", with(func(c *Candidate) { c.Reported, c.Strict = false, true }),
			Selection{Verdict: FailTask, Reason: ReasonNotReported}},
		{"on the target already", with(func(c *Candidate) { c.Version = "2.0" }), Selection{Verdict: Skip}},
		{"on the target already, strict", with(func(c *Candidate) { c.Version, c.Strict = "2.0", true }),
			Selection{Verdict: FailTask, Reason: ReasonAlreadyOnTarget}},
		{"a source version", with(func(c *Candidate) { c.Sources = map[string]bool{"1.0": true} }), Selection{Verdict: Take}},
		{"not a source version", with(func(c *Candidate) { c.Sources = map[string]bool{"0.9": true} }), Selection{Verdict: Skip}},
		{"not a source version, strict", with(func(c *Candidate) { c.Sources, c.Strict = map[string]bool{"0.9": true}, true }),
			Selection{Verdict: FailTask, Reason: otav1.FailureWrongVersion}},
		{"held, not pushed yet", with(func(c *Candidate) { c.Holder = otav1.TaskQueued }), Selection{Verdict: FailTask, Reason: otav1.FailureBusy}},
		{"held, not pushed yet, overwrite", with(func(c *Candidate) { c.Holder, c.Overwrite = otav1.TaskQueued, true }), Selection{Verdict: TakeOver}},
		{"held, waiting for confirmation, overwrite", with(func(c *Candidate) { c.Holder, c.Overwrite = otav1.TaskConfirm, true }), Selection{Verdict: TakeOver}},
		{"held and pushed: overwrite cannot take it", with(func(c *Candidate) { c.Holder, c.Overwrite = otav1.TaskNotified, true }),
			Selection{Verdict: FailTask, Reason: otav1.FailureBusy}},
		{"held and upgrading", with(func(c *Candidate) { c.Holder, c.Overwrite = otav1.TaskInProgress, true }),
			Selection{Verdict: FailTask, Reason: otav1.FailureBusy}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Select(c.c); got != c.want {
				t.Errorf("Select = %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestReselectable(t *testing.T) {
	cases := []struct {
		dynamic bool
		state   otav1.TaskState
		reason  string
		want    bool
	}{
		{true, otav1.TaskFailed, otav1.FailureBusy, true},
		{false, otav1.TaskFailed, otav1.FailureBusy, false},
		{true, otav1.TaskFailed, otav1.FailureFlash, false},
		{true, otav1.TaskSucceeded, "", false},
	}
	for _, c := range cases {
		if got := Reselectable(c.dynamic, c.state, c.reason); got != c.want {
			t.Errorf("Reselectable(%v, %s, %q) = %v, want %v", c.dynamic, c.state, c.reason, got, c.want)
		}
	}
}

func TestGrayIsStableAndProportional(t *testing.T) {
	in := 0
	for i := range 10000 {
		name := "dev-" + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676))
		got := InGray(30, "pk", name)
		if got != InGray(30, "pk", name) {
			t.Fatalf("gray membership of %s changed between two calls", name)
		}
		if got {
			in++
		}
	}
	if in < 2700 || in > 3300 {
		t.Fatalf("30%% gray took %d of 10000 devices", in)
	}
	if !InGray(0, "pk", "x") || !InGray(100, "pk", "x") {
		t.Fatal("0 and 100 must take every device")
	}
}

func TestWaveOf(t *testing.T) {
	waves := []otav1.Wave{{Percent: 10}, {Percent: 50}, {Percent: 100}}
	counts := map[int32]int{}
	for i := range 95 {
		counts[WaveOf(i, 95, waves)]++
	}
	// ceil(9.5) = 10, ceil(47.5) = 48: 10, 38 and 47 devices.
	if counts[1] != 10 || counts[2] != 38 || counts[3] != 47 {
		t.Fatalf("waves of 95 devices = %v, want 10, 38, 47", counts)
	}
	if got := WaveOf(0, 1, nil); got != 1 {
		t.Fatalf("no waves: wave %d, want 1", got)
	}
}
