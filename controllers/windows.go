package controllers

import (
	"fmt"
	"time"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/fleet"
	"github.com/otafleet/otafleet/internal/rollout"
)

// parseWindows parses a campaign's maintenance windows. The API server
// checks their shape with CEL, which cannot parse cron or know the zone
// database: a schedule or zone that does not read stalls the campaign with
// the parser's message (reason InvalidSpec), and the engine holds it, as a
// missing device list does.
func parseWindows(ws []otav1.MaintenanceWindow) (rollout.Windows, error) {
	parsed, err := rollout.ParseWindows(ws)
	if err != nil {
		return nil, &waitError{reason: otav1.ReasonInvalidSpec, stalled: true, message: "spec." + err.Error()}
	}
	return parsed, nil
}

// windowStatus is the status of a campaign with maintenance windows, nil
// without.
func windowStatus(s fleet.Status) *otav1.WindowStatus {
	if !s.Windows {
		return nil
	}
	ws := &otav1.WindowStatus{Open: s.Window.Open}
	if s.Window.Open {
		ws.ClosesAt = timePtr(s.Window.Until)
	} else {
		ws.NextOpen = timePtr(s.Window.Until)
	}
	return ws
}

// waitingForWindow says, for a campaign that has devices to push but no
// open window, when it goes on; "" when it is not waiting for one.
func waitingForWindow(s fleet.Status) string {
	c := s.Counts
	if !s.Windows || s.Window.Open || c.Queued == 0 {
		return ""
	}
	if s.Window.Until.IsZero() {
		return fmt.Sprintf("%d devices wait to be pushed, but no maintenance window will open again; change spec.maintenanceWindows", c.Queued)
	}
	return fmt.Sprintf("%d devices wait for the maintenance window opening at %s",
		c.Queued, s.Window.Until.UTC().Format(time.RFC3339))
}

// waveGate is the status of the gate holding the next wave, nil when none
// does.
func waveGate(s fleet.Status) *otav1.WaveGateStatus {
	if s.Held == "" || s.Gate == "" {
		return nil
	}
	return &otav1.WaveGateStatus{Gate: s.Gate, Wave: s.HeldWave, Message: truncateText(s.Held, 256)}
}
