package protocol

import "strconv"

// Kind says which topic a message travelled on.
type Kind uint8

// Kinds of device topics. The zero Kind is not a topic of this protocol.
const (
	KindUnknown Kind = iota
	// KindInform is a version report: /ota/device/inform/{pk}/{dn}.
	KindInform
	// KindProgress is a progress report: /ota/device/progress/{pk}/{dn}.
	KindProgress
	// KindFirmwareGet is a device asking for its pending upgrade:
	// /sys/{pk}/{dn}/thing/ota/firmware/get.
	KindFirmwareGet
	// KindRequest is the older SDKs' request topic, /ota/device/request/{pk}/{dn},
	// which carries both the device's request and the backend's reply.
	KindRequest
	// KindUpgrade is the upgrade push to a device: /ota/device/upgrade/{pk}/{dn}.
	KindUpgrade
	// KindFirmwareGetReply is the reply to firmware/get:
	// /sys/{pk}/{dn}/thing/ota/firmware/get_reply.
	KindFirmwareGetReply
)

var kindNames = [...]string{
	KindUnknown:          "unknown",
	KindInform:           "inform",
	KindProgress:         "progress",
	KindFirmwareGet:      "firmware_get",
	KindRequest:          "request",
	KindUpgrade:          "upgrade",
	KindFirmwareGetReply: "firmware_get_reply",
}

// String returns a short lower-case name, stable enough for metric labels.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// FromDevice reports whether devices publish on topics of this kind.
func (k Kind) FromDevice() bool {
	return k == KindInform || k == KindProgress || k == KindFirmwareGet || k == KindRequest
}

// Step is a progress step: 0 download started, 1..100 percent, negative
// values are failures.
type Step int8

// Steps with a meaning of their own.
const (
	StepDownloadStarted Step = 0
	StepDone            Step = 100
	StepFailed          Step = -1
	StepDownloadFailed  Step = -2
	StepVerifyFailed    Step = -3
	StepFlashFailed     Step = -4

	minStep = StepFlashFailed
	maxStep = StepDone
)

// Failed reports whether the step is one of the failure codes.
func (s Step) Failed() bool { return s < 0 }

// Valid reports whether the step is within -4..100.
func (s Step) Valid() bool { return s >= minStep && s <= maxStep }

// String returns the step as devices write it ("0", "-2", "100").
func (s Step) String() string { return strconv.Itoa(int(s)) }

// DefaultModule is the module a device means when it names none: the whole
// device's firmware.
const DefaultModule = "default"

// MaxDescLen is how many characters (runes) of a progress description are
// kept.
const MaxDescLen = 128

// MaxDevicePayload bounds a device message. Real reports are under 300 bytes;
// 8 KiB leaves room for verbose SDKs while keeping a flood of junk cheap to
// refuse before any parsing.
const MaxDevicePayload = 8 << 10

// maxNameLen bounds versions and module names (the platform's own rule).
const maxNameLen = 64

// ValidName reports whether s is a valid version or module name: 1..64
// characters from [A-Za-z0-9._-]. Versions are opaque: never order them.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !nameByte(s[i]) {
			return false
		}
	}
	return true
}

func validNameBytes(b []byte) bool {
	if len(b) == 0 || len(b) > maxNameLen {
		return false
	}
	for _, c := range b {
		if !nameByte(c) {
			return false
		}
	}
	return true
}

func nameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}

// SignMethod names the digest in an upgrade's sign field, spelled as the
// vendor's C SDK compares it.
type SignMethod string

// Sign methods sent to devices.
const (
	SignMD5    SignMethod = "Md5"
	SignSHA256 SignMethod = "Sha256"
)

// ParseSignMethod accepts the spellings seen in the platform's documents
// ("Md5", "MD5", "md5", "Sha256", "SHA256", "SHA-256") and returns the
// canonical one.
func ParseSignMethod(s string) (SignMethod, bool) {
	switch s {
	case "Md5", "MD5", "md5":
		return SignMD5, true
	case "Sha256", "SHA256", "sha256", "SHA-256", "sha-256":
		return SignSHA256, true
	}
	return "", false
}

// digestLen is the length of the method's digest in hex.
func (m SignMethod) digestLen() int {
	switch m {
	case SignMD5:
		return 32
	case SignSHA256:
		return 64
	}
	return 0
}
