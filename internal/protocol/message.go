package protocol

import (
	"encoding/json"
	"time"
	"unicode/utf8"
)

// Message is one decoded device → cloud message. It is flat and small
// because the operator handles hundreds of thousands of them: strings are
// either substrings of the topic or short copies.
type Message struct {
	// Kind is the topic the message came on: KindInform, KindProgress,
	// KindFirmwareGet or KindRequest.
	Kind Kind
	// Step is the progress step (KindProgress only).
	Step Step
	// ProductKey and DeviceName come from the topic, never from the payload,
	// so one device cannot speak for another (the broker's ACLs bind a
	// client to its own topics).
	ProductKey string
	DeviceName string
	// Module is the module the message is about; DefaultModule when the
	// device named none.
	Module string
	// Version is the reported version (KindInform), or the current version
	// the device sent with an older-SDK request (KindRequest, may be empty).
	Version string
	// Desc is the progress description, at most MaxDescLen characters.
	Desc string
	// ID is the message id as text, digits only (devices send a string or
	// a number, 0..MaxID); it is echoed in replies.
	ID string
	// ReceivedAt is when the transport received the message; Decode leaves
	// it zero.
	ReceivedAt time.Time
}

// Decode parses a device → cloud message from its topic and payload. It
// returns ErrOwnReply for the backend's own replies on the older request
// topic, and an *Error for anything refused.
func Decode(topic string, payload []byte) (Message, error) {
	if len(payload) > MaxDevicePayload {
		return Message{}, ErrTooLarge
	}
	kind, pk, dn, err := ParseTopic(topic)
	if err != nil {
		return Message{}, err
	}
	if !kind.FromDevice() {
		return Message{}, ErrUnknownTopic
	}
	if !json.Valid(payload) {
		return Message{}, ErrInvalidJSON
	}
	m := Message{Kind: kind, ProductKey: pk, DeviceName: dn, Module: DefaultModule}
	f, err := scanFields(payload)
	if err != nil {
		return Message{}, err
	}
	if kind == KindRequest && f.hasData {
		return Message{}, ErrOwnReply
	}
	if f.module.kind != 0 && f.module.kind != 'n' {
		if m.Module, err = moduleText(f.module); err != nil {
			return Message{}, err
		}
	}
	switch kind {
	case KindInform:
		if !f.hasParams {
			return Message{}, newError(ReasonInvalidSchema, "inform without params")
		}
		if m.Version, err = versionText(f.version, true); err != nil {
			return Message{}, err
		}
	case KindProgress:
		if !f.hasParams {
			return Message{}, newError(ReasonInvalidSchema, "progress without params")
		}
		if m.Step, err = stepValue(f.step); err != nil {
			return Message{}, err
		}
		m.Desc = descText(f.desc)
	case KindRequest:
		if m.Version, err = versionText(f.version, false); err != nil {
			return Message{}, err
		}
	}
	// The id is checked last, so that a message with several faults is
	// refused for the one in its content, which says more about the device.
	if m.ID, err = idText(f.idVal); err != nil {
		return Message{}, err
	}
	return m, nil
}

// fields are the raw values of the keys the protocol defines.
type fields struct {
	idVal              value
	version, module    value
	step, desc         value
	hasParams, hasData bool
}

// scanFields walks the top-level object and its "params" object.
func scanFields(payload []byte) (fields, error) {
	var f fields
	s := newScanner(payload)
	if !s.enterObject() {
		return f, newError(ReasonInvalidSchema, "payload is not a JSON object")
	}
	for {
		key, more := s.nextKey()
		if !more {
			break
		}
		switch {
		case keyIs(key, keyID):
			f.idVal = s.readValue()
		case keyIs(key, keyData):
			f.hasData = true
			s.skipValue()
		case keyIs(key, keyParams):
			// A repeated key replaces the earlier value, as in encoding/json.
			f.version, f.module, f.step, f.desc, f.hasParams = value{}, value{}, value{}, value{}, false
			if s.peek() != '{' {
				if v := s.readValue(); v.kind == 'n' {
					continue // "params": null is as good as absent
				}
				return f, newError(ReasonInvalidSchema, "params is not an object")
			}
			f.hasParams = true
			scanParams(&s, &f)
		default:
			s.skipValue()
		}
	}
	if !s.ok {
		return f, newError(ReasonInvalidJSON, "unexpected structure")
	}
	return f, nil
}

func scanParams(s *scanner, f *fields) {
	s.enterObject()
	for {
		key, more := s.nextKey()
		if !more {
			return
		}
		switch {
		case keyIs(key, keyVersion):
			f.version = s.readValue()
		case keyIs(key, keyModule):
			f.module = s.readValue()
		case keyIs(key, keyStep):
			f.step = s.readValue()
		case keyIs(key, keyDesc):
			f.desc = s.readValue()
		default:
			s.skipValue()
		}
	}
}

// MaxID is the largest message id: the guide documents ids as strings of
// digits in 0..4294967295 (a uint32, which is what device SDKs count with).
const MaxID = 4294967295

// idText accepts an id that is a string of digits (the documented form) or
// a JSON number (the vendor's C SDK), an integer in 0..MaxID, and returns it
// as text to echo in replies. Everything else is refused, a missing id
// included: every device SDK sends one, a reply needs it, and a message
// without one comes from a client that does not speak the protocol, which
// the rejection counter and log line then make visible.
func idText(v value) (string, error) {
	var raw []byte
	switch v.kind {
	case '0':
		raw = v.raw
	case '"':
		raw = v.text()
	case 0, 'n':
		return "", newError(ReasonInvalidID, "missing id")
	default:
		return "", newError(ReasonInvalidID, "id is neither a string nor a number")
	}
	if !digitsOnly(raw, 10) {
		return "", newError(ReasonInvalidID, "id must be an integer in 0..4294967295: "+quote(raw))
	}
	if n, _ := integer(raw, 10); n > MaxID {
		return "", newError(ReasonInvalidID, "id must be an integer in 0..4294967295: "+quote(raw))
	}
	return string(raw), nil
}

// digitsOnly reports whether b is 1..maxDigits ASCII digits: no sign,
// fraction, exponent or space.
func digitsOnly(b []byte, maxDigits int) bool {
	if len(b) == 0 || len(b) > maxDigits {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func versionText(v value, required bool) (string, error) {
	switch v.kind {
	case 0, 'n':
		if required {
			return "", newError(ReasonInvalidVersion, "missing version")
		}
		return "", nil
	case '"':
		t := v.text()
		if !validNameBytes(t) {
			return "", newError(ReasonInvalidVersion, "version must be 1..64 of [A-Za-z0-9._-]: "+quote(t))
		}
		return string(t), nil
	}
	return "", newError(ReasonInvalidVersion, "version is not a string")
}

func moduleText(v value) (string, error) {
	if v.kind != '"' {
		return "", newError(ReasonInvalidModule, "module is not a string")
	}
	t := v.text()
	switch {
	case len(t) == 0 || string(t) == DefaultModule: // compiles to a comparison, no allocation
		return DefaultModule, nil
	case !validNameBytes(t):
		return "", newError(ReasonInvalidModule, "module must be 1..64 of [A-Za-z0-9._-]: "+quote(t))
	}
	return string(t), nil
}

// stepValue accepts "50" and 50; it refuses anything outside -4..100.
func stepValue(v value) (Step, error) {
	var raw []byte
	switch v.kind {
	case '"':
		raw = v.text()
	case '0':
		raw = v.raw
	case 0, 'n':
		return 0, newError(ReasonInvalidStep, "missing step")
	default:
		return 0, newError(ReasonInvalidStep, "step is neither a string nor a number")
	}
	n, ok := integer(raw, 3)
	if !ok || n < int64(minStep) || n > int64(maxStep) {
		return 0, newError(ReasonInvalidStep, "step must be an integer in -4..100: "+quote(raw))
	}
	return Step(n), nil
}

// descText keeps the first MaxDescLen characters of a description and
// replaces invalid UTF-8, so that it is safe to store and display. A
// description of another JSON type is ignored rather than refused: it is
// free text that nothing depends on.
func descText(v value) string {
	if v.kind != '"' {
		return ""
	}
	t := v.text()
	runes, cut := 0, len(t)
	for i := 0; i < len(t); {
		if runes == MaxDescLen {
			cut = i
			break
		}
		_, size := utf8.DecodeRune(t[i:])
		i += size
		runes++
	}
	t = t[:cut]
	if !utf8.Valid(t) {
		return string([]rune(string(t))) // converts invalid bytes to U+FFFD
	}
	return string(t)
}
