package rollout

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// cronParser reads what the API allows: five fields, an optional leading
// seconds field (short windows in tests and labs), or a descriptor.
// @every is refused: its activations float with the time they are asked
// from, so a window built on it would never be found open.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// window is one parsed maintenance window.
type window struct {
	sched cron.Schedule
	dur   time.Duration
	loc   *time.Location
}

// Windows are a campaign's parsed maintenance windows; none means the
// campaign may push at any time.
type Windows []window

// ParseWindows parses maintenance windows, saying which one is wrong and
// why: the API server checks their shape, only a parser knows a cron
// expression (or a zone name) reads.
func ParseWindows(ws []otav1.MaintenanceWindow) (Windows, error) {
	out := make(Windows, 0, len(ws))
	for i, w := range ws {
		field := fmt.Sprintf("maintenanceWindows[%d]", i)
		if strings.HasPrefix(strings.TrimSpace(w.Schedule), "@every") {
			return nil, fmt.Errorf("%s.schedule %q: @every is not a window's start; use a cron expression such as \"0 2 * * *\"", field, w.Schedule)
		}
		if strings.Contains(w.Schedule, "TZ=") {
			return nil, fmt.Errorf("%s.schedule %q: set the time zone in timeZone", field, w.Schedule)
		}
		sched, err := cronParser.Parse(w.Schedule)
		if err != nil {
			return nil, fmt.Errorf("%s.schedule %q does not read as cron: %v", field, w.Schedule, err)
		}
		zone := w.TimeZone
		if zone == "" {
			zone = "UTC"
		}
		loc, err := time.LoadLocation(zone)
		if err != nil || zone == "Local" {
			return nil, fmt.Errorf("%s.timeZone %q is not an IANA time zone such as Europe/Berlin or UTC", field, w.TimeZone)
		}
		if w.Duration.Duration <= 0 {
			return nil, fmt.Errorf("%s.duration must be positive, not %s", field, w.Duration.Duration)
		}
		out = append(out, window{sched: sched, dur: w.Duration.Duration, loc: loc})
	}
	return out, nil
}

// WindowState is where a campaign stands against its windows at a time.
type WindowState struct {
	// Open: a window is open (always, for a campaign without windows).
	Open bool
	// Until is when Open changes: the open window's end, or the next
	// window's start; zero when it never changes (no windows, or none that
	// will ever open again).
	Until time.Time
}

// Valid reports whether a state computed earlier still holds at now, so
// that the engine asks the cron parser once per change, not once a tick.
func (s WindowState) Valid(now time.Time) bool {
	return s.Until.IsZero() || now.Before(s.Until)
}

// maxChain bounds the walk over activations that overlap an open window
// (a window longer than its period): past it, the window counts as closing
// at the last end found, and is found open again at once.
const maxChain = 1000

// At says whether a window is open at now. A window opened by an
// activation s is open on [s, s+duration); overlapping windows join.
func (ws Windows) At(now time.Time) WindowState {
	if len(ws) == 0 {
		return WindowState{Open: true}
	}
	var end, next time.Time
	for _, w := range ws {
		if e := w.openUntil(now); e.After(end) {
			end = e
		}
		if n := w.next(now); !n.IsZero() && (next.IsZero() || n.Before(next)) {
			next = n
		}
	}
	if !end.IsZero() {
		return WindowState{Open: true, Until: ws.joined(end)}
	}
	return WindowState{Until: next}
}

// joined extends an open window's end over other windows that open
// before it closes.
func (ws Windows) joined(end time.Time) time.Time {
	for range maxChain {
		later := end
		for _, w := range ws {
			if e := w.openUntil(end); e.After(later) {
				later = e
			}
		}
		if !later.After(end) {
			return end
		}
		end = later
	}
	return end
}

// openUntil returns when the window open at t closes, or zero when none is
// open at t: the first activation after t-duration opened it if it came at
// or before t.
func (w window) openUntil(t time.Time) time.Time {
	// Next is strictly after its argument: an activation exactly duration
	// ago (whose window just closed) is not found, one exactly at t is.
	s := w.sched.Next(t.Add(-w.dur).In(w.loc))
	if s.IsZero() || s.After(t) {
		return time.Time{}
	}
	end := s.Add(w.dur)
	if !end.After(t) {
		return time.Time{}
	}
	return end.UTC()
}

// next returns the window's next opening after t, zero if none.
func (w window) next(t time.Time) time.Time {
	n := w.sched.Next(t.In(w.loc))
	if n.IsZero() {
		return n
	}
	return n.UTC()
}
