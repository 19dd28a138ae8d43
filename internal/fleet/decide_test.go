package fleet

import (
	"testing"
	"time"
)

func TestSilentPush(t *testing.T) {
	const repushAfter, silence = 5 * time.Second, time.Hour
	cases := []struct {
		name        string
		pushes, max int32
		since       time.Duration
		reconnected bool
		silence     time.Duration
		want        pushAction
	}{
		{"fresh push, device reconnects at once", 1, 3, time.Second, true, silence, keepWaiting},
		{"device came back without the push", 1, 3, 6 * time.Second, true, silence, repush},
		{"second push unanswered too", 2, 3, 6 * time.Second, true, silence, repush},
		{"third push unanswered: give up", 3, 3, 6 * time.Second, true, silence, noResponse},
		{"silent, not for long", 1, 3, time.Minute, false, silence, keepWaiting},
		{"silent for the timeout", 1, 3, time.Hour, false, silence, repush},
		{"silent for the timeout, last push", 3, 3, time.Hour, false, silence, noResponse},
		{"no silence limit", 1, 3, 100 * time.Hour, false, 0, keepWaiting},
		{"rebuilt record without a count", 0, 1, time.Hour, false, silence, noResponse},
		{"zero max means the default", 2, 0, time.Hour, false, silence, repush},
		{"default max reached", 3, 0, time.Hour, false, silence, noResponse},
		{"one push allowed", 1, 1, 6 * time.Second, true, silence, noResponse},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := silentPush(c.pushes, c.max, c.since, repushAfter, c.silence, c.reconnected); got != c.want {
				t.Errorf("silentPush = %d, want %d", got, c.want)
			}
		})
	}
}
