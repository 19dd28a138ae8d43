package rollout

import (
	"strings"
	"testing"
	"time"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

func TestInform(t *testing.T) {
	const soak = 10 * time.Minute
	cases := []struct {
		name    string
		state   otav1.TaskState
		version string
		soak    time.Duration
		want    InformAction
	}{
		{"target, no soak", otav1.TaskInProgress, "2.0", 0, Succeed},
		{"target with a soak", otav1.TaskInProgress, "2.0", soak, StartSoak},
		{"target straight after the push", otav1.TaskNotified, "2.0", soak, StartSoak},
		{"soaking, target again (a reconnect)", otav1.TaskSoaking, "2.0", soak, NoChange},
		{"soaking, back on the old version", otav1.TaskSoaking, "1.0", soak, Revert},
		{"soaking, a third version", otav1.TaskSoaking, "1.5", soak, Revert},
		{"upgrading, a third version", otav1.TaskInProgress, "1.5", soak, WrongVersion},
		{"pushed, old version again: missed the push", otav1.TaskNotified, "1.0", soak, Reconnected},
		{"upgrading, old version again (reboot before flashing)", otav1.TaskInProgress, "1.0", soak, NoChange},
		{"queued, old version", otav1.TaskQueued, "1.0", soak, NoChange},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Inform(c.state, "1.0", "2.0", c.version, c.soak); got != c.want {
				t.Errorf("Inform = %d, want %d", got, c.want)
			}
		})
	}
}

func TestSoakOver(t *testing.T) {
	start := t0.UnixMilli()
	soak := time.Hour
	cases := []struct {
		name  string
		state otav1.TaskState
		now   time.Time
		want  bool
	}{
		{"a minute in", otav1.TaskSoaking, t0.Add(time.Minute), false},
		{"a millisecond short", otav1.TaskSoaking, t0.Add(soak - time.Millisecond), false},
		{"exactly the soak", otav1.TaskSoaking, t0.Add(soak), true},
		{"not soaking", otav1.TaskInProgress, t0.Add(2 * soak), false},
	}
	for _, c := range cases {
		if got := SoakOver(c.state, start, soak, c.now.UnixMilli()); got != c.want {
			t.Errorf("%s: SoakOver = %v, want %v", c.name, got, c.want)
		}
	}
	if got := RevertMessage("1.0", start, t0.Add(90*time.Second).UnixMilli()); got != "reported 1.0 1m30s into the soak" {
		t.Errorf("RevertMessage = %q", got)
	}
}

func TestRevertAbort(t *testing.T) {
	pct := func(v int32) *int32 { return &v }
	p := &otav1.AbortPolicy{MinFinished: 10, MaxRevertedPercent: pct(10)}
	cases := []struct {
		name   string
		counts otav1.TaskCounts
		p      *otav1.AbortPolicy
		abort  string // part of the message, "" for none
	}{
		{"no limit set: reverts never abort", otav1.TaskCounts{Succeeded: 1, Reverted: 9}, &otav1.AbortPolicy{MinFinished: 1}, ""},
		{"too few finished", otav1.TaskCounts{Succeeded: 5, Reverted: 4}, p, ""},
		{"at the limit", otav1.TaskCounts{Succeeded: 18, Reverted: 2}, p, ""},
		{"over the limit", otav1.TaskCounts{Succeeded: 17, Reverted: 3}, p, "3 of 20 devices whose soak ended reverted"},
		{"soaking devices are not judged", otav1.TaskCounts{Succeeded: 9, Reverted: 2, Soaking: 100}, p, "2 of 11"},
		{"failures count as finished, not as judged", otav1.TaskCounts{Succeeded: 1, Failed: 9, Reverted: 1}, p, "1 of 2"},
		{"zero percent: the first revert aborts", otav1.TaskCounts{Succeeded: 50, Reverted: 1},
			&otav1.AbortPolicy{MinFinished: 0, MaxRevertedPercent: pct(0)}, "1 of 51"},
		{"reverts are not failures", otav1.TaskCounts{Succeeded: 8, Reverted: 5},
			&otav1.AbortPolicy{MinFinished: 1, MaxFailed: 0, MaxFailedPercent: 10}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := AbortReason(c.counts, c.p)
			if (got == "") != (c.abort == "") || !strings.Contains(got, c.abort) {
				t.Errorf("AbortReason = %q, want %q", got, c.abort)
			}
		})
	}
}
