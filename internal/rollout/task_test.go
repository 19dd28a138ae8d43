package rollout

import (
	"testing"
	"time"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

var t0 = time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)

func TestAfterFailure(t *testing.T) {
	p := Retry{Count: 2, Interval: 10 * time.Minute}
	cases := []struct {
		name    string
		to      otav1.TaskState
		attempt int32
		p       Retry
		over    bool
		want    time.Time
	}{
		{"first failure is retried after the interval", otav1.TaskFailed, 1, p, false, t0.Add(10 * time.Minute)},
		{"last retry allowed", otav1.TaskFailed, 2, p, false, t0.Add(10 * time.Minute)},
		{"retries exhausted", otav1.TaskFailed, 3, p, false, time.Time{}},
		{"no retry policy", otav1.TaskFailed, 1, Retry{}, false, time.Time{}},
		{"timeouts are final by default", otav1.TaskTimedOut, 1, p, false, time.Time{}},
		{"timeouts retried when asked", otav1.TaskTimedOut, 1, Retry{Count: 1, Interval: time.Minute, TimedOut: true}, false, t0.Add(time.Minute)},
		{"a campaign that is over retries nothing", otav1.TaskFailed, 1, p, true, time.Time{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := AfterFailure(c.to, c.attempt, c.p, c.over, t0); !got.Equal(c.want) {
				t.Errorf("AfterFailure = %s, want %s", got, c.want)
			}
		})
	}
}

func TestTimedOutAndRetryDue(t *testing.T) {
	now := t0.UnixMilli()
	hour := time.Hour.Milliseconds()
	cases := []struct {
		name    string
		state   otav1.TaskState
		started int64
		timeout time.Duration
		want    bool
	}{
		{"in progress for the whole timeout", otav1.TaskInProgress, now - hour, time.Hour, true},
		{"one millisecond short", otav1.TaskInProgress, now - hour + 1, time.Hour, false},
		{"no timeout", otav1.TaskInProgress, now - 100*hour, 0, false},
		{"never started (rebuilt without a start)", otav1.TaskInProgress, 0, time.Hour, false},
		{"notified tasks are the silent-push rule's", otav1.TaskNotified, now - 2*hour, time.Hour, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := TimedOut(c.state, c.started, c.timeout, now); got != c.want {
				t.Errorf("TimedOut = %v, want %v", got, c.want)
			}
		})
	}
	if !RetryDue(otav1.TaskQueued, now, now) || RetryDue(otav1.TaskQueued, now+1, now) || RetryDue(otav1.TaskFailed, 0, now) {
		t.Error("RetryDue: due at its time, not a millisecond before, and only for QUEUED tasks")
	}
}

func TestRetryMessageAndFailureReason(t *testing.T) {
	if got := RetryMessage(1, otav1.FailureDownload, "404"); got != "attempt 1 DownloadFailed: 404" {
		t.Errorf("RetryMessage = %q", got)
	}
	if got := RetryMessage(2, otav1.FailureTimeout, ""); got != "attempt 2 Timeout" {
		t.Errorf("RetryMessage without a message = %q", got)
	}
	for step, want := range map[int32]string{-1: otav1.FailureUpgrade, -2: otav1.FailureDownload, -3: otav1.FailureVerification,
		-4: otav1.FailureFlash, -9: otav1.FailureUpgrade} {
		if got := FailureReason(step); got != want {
			t.Errorf("FailureReason(%d) = %s, want %s", step, got, want)
		}
	}
}

func TestSilentPush(t *testing.T) {
	const repushAfter, silence = 5 * time.Second, time.Hour
	cases := []struct {
		name        string
		pushes, max int32
		since       time.Duration
		reconnected bool
		silence     time.Duration
		want        PushAction
	}{
		{"fresh push, device reconnects at once", 1, 3, time.Second, true, silence, KeepWaiting},
		{"device came back without the push", 1, 3, 6 * time.Second, true, silence, Repush},
		{"second push unanswered too", 2, 3, 6 * time.Second, true, silence, Repush},
		{"third push unanswered: give up", 3, 3, 6 * time.Second, true, silence, NoResponse},
		{"silent, not for long", 1, 3, time.Minute, false, silence, KeepWaiting},
		{"silent for the timeout", 1, 3, time.Hour, false, silence, Repush},
		{"silent for the timeout, last push", 3, 3, time.Hour, false, silence, NoResponse},
		{"no silence limit", 1, 3, 100 * time.Hour, false, 0, KeepWaiting},
		{"rebuilt record without a count", 0, 1, time.Hour, false, silence, NoResponse},
		{"zero max means the default", 2, 0, time.Hour, false, silence, Repush},
		{"default max reached", 3, 0, time.Hour, false, silence, NoResponse},
		{"one push allowed", 1, 1, 6 * time.Second, true, silence, NoResponse},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := SilentPush(c.pushes, c.max, c.since, repushAfter, c.silence, c.reconnected); got != c.want {
				t.Errorf("SilentPush = %d, want %d", got, c.want)
			}
		})
	}
}
