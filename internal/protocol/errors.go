package protocol

import "errors"

// Reason classifies why a message was refused. Values are short snake_case
// strings meant for metric labels; the set is fixed.
type Reason string

// Reasons for refusing a message.
const (
	ReasonTooLarge       Reason = "too_large"
	ReasonInvalidTopic   Reason = "invalid_topic"
	ReasonUnknownTopic   Reason = "unknown_topic"
	ReasonInvalidJSON    Reason = "invalid_json"
	ReasonInvalidSchema  Reason = "invalid_schema"
	ReasonInvalidID      Reason = "invalid_id"
	ReasonInvalidVersion Reason = "invalid_version"
	ReasonInvalidModule  Reason = "invalid_module"
	ReasonInvalidStep    Reason = "invalid_step"
	ReasonInvalidUpgrade Reason = "invalid_upgrade"
)

// Error is a refused message. Match it with errors.Is against the Err*
// values, which compare by Reason only, or read Reason with ReasonOf.
type Error struct {
	Reason Reason
	// Detail says what exactly was wrong; it may quote (bounded) device input.
	Detail string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return "protocol: " + string(e.Reason)
	}
	return "protocol: " + string(e.Reason) + ": " + e.Detail
}

// Is makes errors.Is(err, ErrInvalidStep) true for every *Error with that
// Reason, whatever its Detail.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Reason == e.Reason && t.Detail == ""
}

// Sentinels for errors.Is.
var (
	ErrTooLarge       = &Error{Reason: ReasonTooLarge}
	ErrInvalidTopic   = &Error{Reason: ReasonInvalidTopic}
	ErrUnknownTopic   = &Error{Reason: ReasonUnknownTopic}
	ErrInvalidJSON    = &Error{Reason: ReasonInvalidJSON}
	ErrInvalidSchema  = &Error{Reason: ReasonInvalidSchema}
	ErrInvalidID      = &Error{Reason: ReasonInvalidID}
	ErrInvalidVersion = &Error{Reason: ReasonInvalidVersion}
	ErrInvalidModule  = &Error{Reason: ReasonInvalidModule}
	ErrInvalidStep    = &Error{Reason: ReasonInvalidStep}
	ErrInvalidUpgrade = &Error{Reason: ReasonInvalidUpgrade}
)

// ErrOwnReply is returned by Decode for a message on the older request topic
// that is the backend's own reply coming back (it carries "data"). It is not
// a device error: callers drop it silently.
var ErrOwnReply = errors.New("protocol: backend reply on the request topic")

// ReasonOf returns the Reason of a protocol *Error, or "" for other errors.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func newError(r Reason, detail string) *Error { return &Error{Reason: r, Detail: detail} }

// quote bounds device input quoted in error details, so that a log line
// never carries a whole payload.
func quote(b []byte) string {
	const max = 40
	if len(b) > max {
		return "\"" + string(b[:max]) + "...\""
	}
	return "\"" + string(b) + "\""
}
