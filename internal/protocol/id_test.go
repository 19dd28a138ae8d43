package protocol

import (
	"errors"
	"testing"
)

// TestMessageIDOnEveryTopic holds the id rule (docs/protocol.md): a string of
// digits or a JSON number, an integer in 0..4294967295, on every device
// topic alike; anything else is refused as invalid_id.
func TestMessageIDOnEveryTopic(t *testing.T) {
	bodies := map[Kind]string{
		KindInform:      `"params":{"version":"1.0"}`,
		KindProgress:    `"params":{"step":"10"}`,
		KindFirmwareGet: `"params":{}`,
		KindRequest:     `"params":{"version":"1.0"}`,
	}
	topics := map[Kind]string{
		KindInform: InformTopic(pk, dn), KindProgress: ProgressTopic(pk, dn),
		KindFirmwareGet: FirmwareGetTopic(pk, dn), KindRequest: RequestTopic(pk, dn),
	}
	tests := []struct {
		id   string // the raw JSON of the id member; "" leaves it out
		want string // the decoded id; "" means refused
	}{
		{`"123"`, "123"},
		{`123`, "123"},
		{`0`, "0"},
		{`"0"`, "0"},
		{`4294967295`, "4294967295"},
		{`"4294967295"`, "4294967295"},
		{`"007"`, "007"},
		{`"\u0031\u0032"`, "12"},
		{``, ""},
		{`null`, ""},
		{`""`, ""},
		{`"abc"`, ""},
		{`"12a"`, ""},
		{`" 12"`, ""},
		{`"+1"`, ""},
		{`"-1"`, ""},
		{`-1`, ""},
		{`-0`, ""},
		{`1.5`, ""},
		{`1.0`, ""},
		{`1e3`, ""},
		{`4294967296`, ""},
		{`"4294967296"`, ""},
		{`99999999999`, ""},
		{`"99999999999"`, ""},
		{`true`, ""},
		{`{"n":1}`, ""},
		{`[1]`, ""},
	}
	for kind, body := range bodies {
		for _, tt := range tests {
			payload := `{` + body + `}`
			if tt.id != "" {
				payload = `{"id":` + tt.id + `,` + body + `}`
			}
			m, err := Decode(topics[kind], []byte(payload))
			switch {
			case tt.want == "" && !errors.Is(err, ErrInvalidID):
				t.Errorf("%s %s: got id %q, err %v; want invalid_id", kind, payload, m.ID, err)
			case tt.want != "" && err != nil:
				t.Errorf("%s %s: refused: %v", kind, payload, err)
			case tt.want != "" && m.ID != tt.want:
				t.Errorf("%s %s: id %q, want %q", kind, payload, m.ID, tt.want)
			}
		}
	}
}

// TestOtherFaultsBeforeID: a message with a bad step and no id is reported
// for its step, the fault that says more.
func TestOtherFaultsBeforeID(t *testing.T) {
	_, err := Decode(ProgressTopic(pk, dn), []byte(`{"params":{"step":"250"}}`))
	if ReasonOf(err) != ReasonInvalidStep {
		t.Fatalf("got %v, want invalid_step", err)
	}
}
