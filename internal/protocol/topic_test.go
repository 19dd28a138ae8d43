package protocol

import (
	"errors"
	"strings"
	"testing"
)

func TestTopics(t *testing.T) {
	tests := []struct {
		topic string
		want  string
		kind  Kind
	}{
		{InformTopic(pk, dn), "/ota/device/inform/a1TSu2F29co/dev-000001", KindInform},
		{ProgressTopic(pk, dn), "/ota/device/progress/a1TSu2F29co/dev-000001", KindProgress},
		{UpgradeTopic(pk, dn), "/ota/device/upgrade/a1TSu2F29co/dev-000001", KindUpgrade},
		{RequestTopic(pk, dn), "/ota/device/request/a1TSu2F29co/dev-000001", KindRequest},
		{FirmwareGetTopic(pk, dn), "/sys/a1TSu2F29co/dev-000001/thing/ota/firmware/get", KindFirmwareGet},
		{FirmwareGetReplyTopic(pk, dn), "/sys/a1TSu2F29co/dev-000001/thing/ota/firmware/get_reply", KindFirmwareGetReply},
	}
	for _, tt := range tests {
		if tt.topic != tt.want {
			t.Errorf("topic = %q, want %q", tt.topic, tt.want)
		}
		kind, p, d, err := ParseTopic(tt.topic)
		if err != nil || kind != tt.kind || p != pk || d != dn {
			t.Errorf("ParseTopic(%q) = %v %q %q %v", tt.topic, kind, p, d, err)
		}
	}
	if got := DeviceFilters(""); strings.Join(got, " ") != "/ota/device/inform/+/+ /ota/device/progress/+/+ "+
		"/sys/+/+/thing/ota/firmware/get /ota/device/request/+/+" {
		t.Errorf("DeviceFilters = %q", got)
	}
}

func TestParseTopicRefusals(t *testing.T) {
	tests := []struct {
		topic string
		want  error
	}{
		{"/ota/device/inform/pk", ErrInvalidTopic},
		{"/ota/device/inform//dn", ErrInvalidTopic},
		{"/ota/device/inform/pk/", ErrInvalidTopic},
		{"/ota/device/inform/pk/+", ErrInvalidTopic},
		{"/ota/device/inform/#/dn", ErrInvalidTopic},
		{"/ota/device/inform/pk/dn/extra", ErrInvalidTopic},
		{"/ota/device/inform/pk/d\x00n", ErrInvalidTopic},
		{"/ota/device/inform/pk/\xff", ErrInvalidTopic},
		{"/ota/device/inform/pk/" + strings.Repeat("d", 129), ErrInvalidTopic},
		{"/sys//dn/thing/ota/firmware/get", ErrInvalidTopic},
		{"/sys/thing/ota/firmware/get", ErrUnknownTopic},
		{"/sys/pk/dn/thing/deviceinfo/update", ErrUnknownTopic},
		{"ota/device/inform/pk/dn", ErrUnknownTopic},
		{"/ota/device/informs/pk/dn", ErrUnknownTopic},
		{"", ErrUnknownTopic},
	}
	for _, tt := range tests {
		if _, _, _, err := ParseTopic(tt.topic); !errors.Is(err, tt.want) {
			t.Errorf("ParseTopic(%q) error = %v, want %v", tt.topic, err, tt.want)
		}
	}
}

func TestValidSegment(t *testing.T) {
	for s, want := range map[string]bool{
		"dev-1": true, "a.b_c:d@e": true, "设备1": true, strings.Repeat("x", 128): true,
		"": false, "a/b": false, "a+b": false, "a#": false, "tab\t": false, "\x7f": false,
		strings.Repeat("x", 129): false, "\xc3": false,
	} {
		if got := ValidSegment(s); got != want {
			t.Errorf("ValidSegment(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestValidNameAndSignMethod(t *testing.T) {
	for s, want := range map[string]bool{
		"app-1.0.0-20191107142256": true, "1": true, "v_2.0": true, strings.Repeat("9", 64): true,
		"": false, "1.0 beta": false, "1/0": false, "é": false, strings.Repeat("9", 65): false,
	} {
		if got := ValidName(s); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", s, got, want)
		}
	}
	for in, want := range map[string]SignMethod{"Md5": SignMD5, "MD5": SignMD5, "SHA256": SignSHA256, "Sha256": SignSHA256} {
		if got, ok := ParseSignMethod(in); !ok || got != want {
			t.Errorf("ParseSignMethod(%q) = %q %v", in, got, ok)
		}
	}
	if _, ok := ParseSignMethod("crc32"); ok {
		t.Error("ParseSignMethod accepted crc32")
	}
	if Step(-2).String() != "-2" || !Step(-1).Failed() || Step(101).Valid() || KindProgress.String() != "progress" {
		t.Error("Step/Kind helpers")
	}
}
