package protocol

import (
	"strings"
	"unicode/utf8"
)

// Topic prefixes and suffixes. The leading slash is part of the vendor's
// topics: "/ota/device/inform/pk/dn" has an empty first level.
const (
	otaPrefix      = "/ota/device/"
	sysPrefix      = "/sys/"
	getSuffix      = "/thing/ota/firmware/get"
	getReplySuffix = "/thing/ota/firmware/get_reply"
)

// maxSegmentLen bounds a product key or device name. The platform allows far
// less (device names up to 32 characters); the bound only keeps junk out.
const maxSegmentLen = 128

// Topic builders. They do not validate: check untrusted names with
// ValidSegment first (the mqtt gateway does before every publish).

// InformTopic is where a device reports a module's version.
func InformTopic(pk, dn string) string { return otaPrefix + "inform/" + pk + "/" + dn }

// ProgressTopic is where a device reports upgrade progress.
func ProgressTopic(pk, dn string) string { return otaPrefix + "progress/" + pk + "/" + dn }

// UpgradeTopic is where the cloud pushes an upgrade to a device.
func UpgradeTopic(pk, dn string) string { return otaPrefix + "upgrade/" + pk + "/" + dn }

// RequestTopic is the older SDKs' request topic (request and reply).
func RequestTopic(pk, dn string) string { return otaPrefix + "request/" + pk + "/" + dn }

// FirmwareGetTopic is where a device asks for its pending upgrade.
func FirmwareGetTopic(pk, dn string) string { return sysPrefix + pk + "/" + dn + getSuffix }

// FirmwareGetReplyTopic is where the cloud answers FirmwareGetTopic.
func FirmwareGetReplyTopic(pk, dn string) string {
	return sysPrefix + pk + "/" + dn + getReplySuffix
}

// DeviceFilters returns the subscription filters for every device → cloud
// topic of one product, or of all products when pk is "" or "+".
func DeviceFilters(pk string) []string {
	if pk == "" {
		pk = "+"
	}
	return []string{
		InformTopic(pk, "+"),
		ProgressTopic(pk, "+"),
		FirmwareGetTopic(pk, "+"),
		RequestTopic(pk, "+"),
	}
}

// ValidSegment reports whether s may be used as a product key or device
// name in a topic: 1..128 bytes of valid UTF-8 without '/', the MQTT
// wildcards '+' and '#', or control characters.
func ValidSegment(s string) bool {
	if len(s) == 0 || len(s) > maxSegmentLen {
		return false
	}
	ascii := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '/' || c == '+' || c == '#' || c < 0x20 || c == 0x7f:
			return false
		case c >= 0x80:
			ascii = false
		}
	}
	return ascii || utf8.ValidString(s)
}

// ParseTopic splits a topic of this protocol into its kind, product key and
// device name. It does not allocate: pk and dn are substrings of topic.
func ParseTopic(topic string) (kind Kind, pk, dn string, err error) {
	var rest string
	switch {
	case strings.HasPrefix(topic, otaPrefix):
		var name string
		name, rest, _ = strings.Cut(topic[len(otaPrefix):], "/")
		switch name {
		case "inform":
			kind = KindInform
		case "progress":
			kind = KindProgress
		case "request":
			kind = KindRequest
		case "upgrade":
			kind = KindUpgrade
		default:
			return KindUnknown, "", "", ErrUnknownTopic
		}
	case strings.HasPrefix(topic, sysPrefix):
		var ok bool
		if rest, ok = between(topic, sysPrefix, getSuffix); ok {
			kind = KindFirmwareGet
		} else if rest, ok = between(topic, sysPrefix, getReplySuffix); ok {
			kind = KindFirmwareGetReply
		} else {
			return KindUnknown, "", "", ErrUnknownTopic
		}
	default:
		return KindUnknown, "", "", ErrUnknownTopic
	}
	pk, dn, ok := strings.Cut(rest, "/")
	if !ok || !ValidSegment(pk) || !ValidSegment(dn) {
		return kind, "", "", ErrInvalidTopic
	}
	return kind, pk, dn, nil
}

// between returns what lies between prefix and suffix, which must not
// overlap ("/sys/thing/ota/firmware/get" is not a firmware/get topic).
func between(s, prefix, suffix string) (string, bool) {
	if len(s) < len(prefix)+len(suffix) || !strings.HasPrefix(s, prefix) || !strings.HasSuffix(s, suffix) {
		return "", false
	}
	return s[len(prefix) : len(s)-len(suffix)], true
}
