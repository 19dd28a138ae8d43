package devicesim

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Summary is the fleet's state in numbers. It marshals to JSON as is.
type Summary struct {
	Devices     int `json:"devices"`
	Connections int `json:"connections"`
	// ConnectionsUp counts connections currently connected and subscribed.
	ConnectionsUp int `json:"connectionsUp"`
	// Informed counts devices whose boot informs were all acknowledged.
	Informed int `json:"informed"`
	// PushesReceived counts valid upgrade pushes; RepliesReceived replies to
	// firmware/get or older-SDK requests (empty ones included).
	PushesReceived  int64 `json:"pushesReceived"`
	RepliesReceived int64 `json:"repliesReceived"`
	// PushesIgnored counts upgrades that arrived while the device was busy
	// or offline.
	PushesIgnored int64 `json:"pushesIgnored"`
	// InvalidReceived counts cloud messages a real device would drop: a
	// non-zero value means the operator broke the wire contract.
	InvalidReceived int64 `json:"invalidReceived"`
	Downloads       int64 `json:"downloads"`
	DownloadedBytes int64 `json:"downloadedBytes"`
	// Published and PublishErrors count device → cloud QoS 1 messages.
	Published     int64 `json:"published"`
	PublishErrors int64 `json:"publishErrors"`
	// ContractViolations counts what a device in the field would have died
	// on (strict profiles only): a URL, a push or a download server outside
	// the wire contract. Tests assert it is zero; Violations breaks it down
	// by kind, and the first of each kind is logged.
	ContractViolations int64               `json:"contractViolations"`
	Violations         map[Violation]int64 `json:"violations,omitempty"`
	// Outcomes counts devices by the result of their latest attempt.
	Outcomes map[Outcome]int `json:"outcomes"`
	// Versions counts devices per module and version.
	Versions map[string]map[string]int `json:"versions"`
}

// JSON returns the summary as indented JSON.
func (s Summary) JSON() []byte {
	b, _ := json.MarshalIndent(s, "", "  ") // plain maps and numbers: cannot fail
	return b
}

// Line is a one-line rendering, for logs and error messages.
func (s Summary) Line() string {
	return fmt.Sprintf("devices=%d informed=%d pushes=%d replies=%d violations=%d outcomes=%s", s.Devices, s.Informed,
		s.PushesReceived, s.RepliesReceived, s.ContractViolations, counts(s.Outcomes))
}

// String renders the summary for people.
func (s Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "devices:     %d over %d connection(s) (%d up), %d informed\n", s.Devices, s.Connections,
		s.ConnectionsUp, s.Informed)
	fmt.Fprintf(&b, "received:    %d pushes, %d replies, %d ignored (busy/offline), %d invalid\n",
		s.PushesReceived, s.RepliesReceived, s.PushesIgnored, s.InvalidReceived)
	fmt.Fprintf(&b, "downloads:   %d (%d bytes)\n", s.Downloads, s.DownloadedBytes)
	fmt.Fprintf(&b, "published:   %d messages, %d errors\n", s.Published, s.PublishErrors)
	fmt.Fprintf(&b, "violations:  %d %s\n", s.ContractViolations, counts(s.Violations))
	fmt.Fprintf(&b, "outcomes:    %s\n", counts(s.Outcomes))
	for _, m := range sortedKeys(s.Versions) {
		fmt.Fprintf(&b, "module %-6s %s\n", m+":", counts(s.Versions[m]))
	}
	return b.String()
}

func counts[K ~string, V int | int64](m map[K]V) string {
	plain := make(map[string]V, len(m))
	for k, v := range m {
		plain[string(k)] = v
	}
	var parts []string
	for _, k := range sortedKeys(plain) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, plain[k]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}
