package rollout

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

func mw(schedule string, d time.Duration, zone string) otav1.MaintenanceWindow {
	return otav1.MaintenanceWindow{Schedule: schedule, Duration: metav1.Duration{Duration: d}, TimeZone: zone}
}

func mustWindows(t *testing.T, ws ...otav1.MaintenanceWindow) Windows {
	t.Helper()
	out, err := ParseWindows(ws)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestWindowsAt(t *testing.T) {
	nightly := mw("0 2 * * *", 2*time.Hour, "Europe/Berlin") // 02:00-04:00 Berlin: 01:00-03:00 UTC in winter
	weekdays := mw("30 9 * * MON-FRI", 30*time.Minute, "UTC")
	cases := []struct {
		name  string
		ws    []otav1.MaintenanceWindow
		now   string
		open  bool
		until string // "" for zero
	}{
		{"no windows: always open", nil, "2026-12-02T03:00:00Z", true, ""},
		{"before the nightly window", []otav1.MaintenanceWindow{nightly}, "2026-12-02T00:59:59Z", false, "2026-12-02T01:00:00Z"},
		{"at its opening", []otav1.MaintenanceWindow{nightly}, "2026-12-02T01:00:00Z", true, "2026-12-02T03:00:00Z"},
		{"inside it", []otav1.MaintenanceWindow{nightly}, "2026-12-02T02:59:59Z", true, "2026-12-02T03:00:00Z"},
		{"at its close: closed, next night next", []otav1.MaintenanceWindow{nightly}, "2026-12-02T03:00:00Z", false, "2026-12-03T01:00:00Z"},
		{"summer time moves it an hour in UTC", []otav1.MaintenanceWindow{nightly}, "2026-07-01T00:30:00Z", true, "2026-07-01T02:00:00Z"},
		{"weekday window on a Saturday: Monday next", []otav1.MaintenanceWindow{weekdays}, "2026-12-05T10:00:00Z", false, "2026-12-07T09:30:00Z"},
		{"the earlier of two windows opens next", []otav1.MaintenanceWindow{nightly, weekdays}, "2026-12-02T04:00:00Z", false, "2026-12-02T09:30:00Z"},
		{"either window open is enough", []otav1.MaintenanceWindow{nightly, weekdays}, "2026-12-02T09:45:00Z", true, "2026-12-02T10:00:00Z"},
		{"overlapping windows join", []otav1.MaintenanceWindow{mw("0 * * * *", 90*time.Minute, "UTC")}, "2026-12-02T03:10:00Z", true, ""},
		{"seconds field for short windows", []otav1.MaintenanceWindow{mw("*/20 * * * * *", 10*time.Second, "UTC")}, "2026-12-02T03:00:15Z", false, "2026-12-02T03:00:20Z"},
		{"never opens (30 February)", []otav1.MaintenanceWindow{mw("0 0 30 2 *", time.Hour, "UTC")}, "2026-12-02T03:00:00Z", false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := mustWindows(t, c.ws...).At(at(c.now))
			if got.Open != c.open {
				t.Errorf("open = %v, want %v", got.Open, c.open)
			}
			if c.name == "overlapping windows join" {
				// Every hour opens 90 minutes: the windows never close;
				// the walk stops at its bound, far in the future.
				if got.Until.Sub(at(c.now)) < 24*time.Hour {
					t.Errorf("until = %s, want the joined windows' far end", got.Until)
				}
				return
			}
			want := time.Time{}
			if c.until != "" {
				want = at(c.until)
			}
			if !got.Until.Equal(want) {
				t.Errorf("until = %s, want %s", got.Until, want)
			}
		})
	}
}

func TestWindowStateValid(t *testing.T) {
	s := WindowState{Open: true, Until: t0}
	if !s.Valid(t0.Add(-time.Nanosecond)) || s.Valid(t0) || !(WindowState{}).Valid(t0) {
		t.Fatal("a state holds until its Until, and forever without one")
	}
}

func TestParseWindowsRefusesWithAClearMessage(t *testing.T) {
	cases := []struct {
		name string
		w    otav1.MaintenanceWindow
		msg  string
	}{
		{"bad cron", mw("0 25 * * *", time.Hour, "UTC"), `maintenanceWindows[0].schedule "0 25 * * *" does not read as cron`},
		{"unknown zone", mw("0 2 * * *", time.Hour, "Mars/Olympus"), `maintenanceWindows[0].timeZone "Mars/Olympus" is not an IANA time zone`},
		{"Local is not a zone", mw("0 2 * * *", time.Hour, "Local"), "is not an IANA time zone"},
		{"@every floats", mw("@every 1h", time.Hour, "UTC"), "@every is not a window's start"},
		{"zone in the schedule", mw("CRON_TZ=UTC 0 2 * * *", time.Hour, "UTC"), "set the time zone in timeZone"},
		{"zero duration", mw("0 2 * * *", 0, "UTC"), "duration must be positive"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseWindows([]otav1.MaintenanceWindow{c.w})
			if err == nil || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("err = %v, want one containing %q", err, c.msg)
			}
		})
	}
	if ws, err := ParseWindows([]otav1.MaintenanceWindow{mw("@daily", time.Hour, "")}); err != nil || len(ws) != 1 {
		t.Errorf("@daily without a zone (UTC): %v", err)
	}
}
