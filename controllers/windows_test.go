package controllers

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/fleet"
	"github.com/otafleet/otafleet/internal/rollout"
)

func TestWindowStatusAndReason(t *testing.T) {
	at := time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)
	queued := otav1.TaskCounts{Total: 5, Queued: 5}
	cases := []struct {
		name    string
		s       fleet.Status
		status  *otav1.WindowStatus
		waiting string // part of the message, "" for not waiting
	}{
		{"no windows", fleet.Status{Counts: queued, Window: rollout.WindowState{Open: true}}, nil, ""},
		{"closed, devices queued", fleet.Status{Counts: queued, Windows: true, Window: rollout.WindowState{Until: at}},
			&otav1.WindowStatus{NextOpen: &metav1.Time{Time: at}}, "5 devices wait for the maintenance window opening at 2026-12-02T01:00:00Z"},
		{"closed, nothing to push", fleet.Status{Counts: otav1.TaskCounts{Total: 5, InProgress: 5}, Windows: true, Window: rollout.WindowState{Until: at}},
			&otav1.WindowStatus{NextOpen: &metav1.Time{Time: at}}, ""},
		{"open", fleet.Status{Counts: queued, Windows: true, Window: rollout.WindowState{Open: true, Until: at}},
			&otav1.WindowStatus{Open: true, ClosesAt: &metav1.Time{Time: at}}, ""},
		{"never opens again", fleet.Status{Counts: queued, Windows: true}, &otav1.WindowStatus{}, "no maintenance window will open again"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := windowStatus(c.s)
			if (got == nil) != (c.status == nil) || (got != nil && (got.Open != c.status.Open ||
				!got.NextOpen.Equal(c.status.NextOpen) || !got.ClosesAt.Equal(c.status.ClosesAt))) {
				t.Errorf("window status %+v, want %+v", got, c.status)
			}
			msg := waitingForWindow(c.s)
			if (msg == "") != (c.waiting == "") || !strings.Contains(msg, c.waiting) {
				t.Errorf("waiting = %q, want %q", msg, c.waiting)
			}
		})
	}
	s := fleet.Status{Phase: otav1.BatchRunning, Counts: queued, Windows: true, Window: rollout.WindowState{Until: at}}
	if h := runHealth(otav1.RunRunning, s); h.reason != otav1.ReasonOutsideWindow || !h.reconciling {
		t.Errorf("a run waiting for its window: %+v", h)
	}
	if reason, _ := progressMessage(s); reason != otav1.ReasonOutsideWindow {
		t.Errorf("a batch waiting for its window: reason %s", reason)
	}
}

func TestParseWindowsStallsOnInvalidSpec(t *testing.T) {
	_, err := parseWindows([]otav1.MaintenanceWindow{{Schedule: "0 2 * * *", Duration: metav1.Duration{Duration: time.Hour}, TimeZone: "Europe/Berlim"}})
	reason, stalled := waitReason(err)
	if reason != otav1.ReasonInvalidSpec || !stalled || !strings.Contains(err.Error(), `spec.maintenanceWindows[0].timeZone "Europe/Berlim"`) {
		t.Fatalf("reason %s stalled %v: %v", reason, stalled, err)
	}
}
