package devicesim

import (
	"bufio"
	"encoding/json"
	"io"
	"time"
)

// Attempt is one upgrade attempt of a device, as the device saw it: what it
// was pushed and how it ended. Tests check the operator's records against
// these, so they count what devices did, not what the operator believes.
type Attempt struct {
	Module  string `json:"module"`
	Version string `json:"version"`
	// Outcome is how the attempt ended; OutcomeUpgrading while it runs,
	// OutcomeSucceeded once the device informed the new version.
	Outcome Outcome `json:"outcome"`
	// Flashed: the device wrote the image and now runs Version.
	Flashed bool `json:"flashed,omitempty"`
	// Pushed is when the push that started the attempt arrived.
	Pushed time.Time `json:"pushed,omitzero"`
	// Reported is when the device sent the report that ended the attempt
	// (the failure, or the inform of the new version): the chaos harness
	// tells a report a broker outage lost from one the operator lost.
	Reported time.Time `json:"reported,omitzero"`
}

// stamp is the time for a record: in UTC, without the monotonic reading,
// so that it reads back from JSON as it was.
func stamp() time.Time { return time.Now().UTC().Round(0) }

// WriteRecord writes every device's state (DeviceStatus, with its
// History), one JSON object a line, in index order. Call it after Stop for
// a record that no device changes any more.
func (f *Fleet) WriteRecord(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for _, d := range f.devices {
		s, _ := f.Device(d.name)
		if err := enc.Encode(s); err != nil {
			return err
		}
	}
	return bw.Flush()
}
