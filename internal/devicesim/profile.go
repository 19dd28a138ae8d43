package devicesim

import (
	"errors"
	"fmt"
	"strings"
)

// Profile chooses how closely devices imitate a generation of the vendor's
// device SDK. The strict profiles behave exactly as devices in the field
// do, so that no test passes with a URL, a push or a download server that a
// real device would die on; every such encounter is counted as a contract
// violation (Summary.ContractViolations).
type Profile string

// Profiles.
const (
	// ProfileLenient is the simulator's historical behaviour: net/http
	// downloads (redirects followed, any port), strict JSON decoding of
	// pushes. "" means lenient.
	ProfileLenient Profile = "lenient"
	// ProfileSDK3 imitates devices built on the vendor's C SDK 3.x: it
	// subscribes to its own topics, asks on the older request topic,
	// informs each module twice on every connect (a string id, then a
	// numeric one), downloads in one request from the URL host's default
	// port, and dies on long URLs.
	ProfileSDK3 Profile = "sdk3"
	// ProfileSDK4 imitates devices built on LinkSDK 4.x: one connection per
	// device with the user name "deviceName&productKey", no subscriptions
	// (the broker must make them), a naive reader of pushes, and ranged
	// downloads over a new connection per request.
	ProfileSDK4 Profile = "sdk4"
)

// strict reports whether the profile imitates a field SDK.
func (p Profile) strict() bool { return p == ProfileSDK3 || p == ProfileSDK4 }

// Violation names a kind of contract violation: something the operator (or
// its download server) did that a device in the field cannot cope with.
type Violation string

// Violations.
const (
	// ViolationURLHost: the text between "://" and the first "/" is not a
	// bare host name (a port, even :80, or userinfo). The device cannot
	// resolve it and retries forever.
	ViolationURLHost Violation = "url_host"
	// ViolationURLTooLong: host or path with query of 256 bytes or more.
	// A 3.x device overflows its stack; 4.x refuses the download.
	ViolationURLTooLong Violation = "url_too_long"
	// ViolationRedirect: a 3xx answer; devices follow no redirect.
	ViolationRedirect Violation = "redirect"
	// ViolationContentLength: no "Content-Length: N" header (exact
	// spelling), or (4.x) one that is not the length of the range asked.
	ViolationContentLength Violation = "content_length"
	// ViolationChunked: a chunked response; devices cannot read it.
	ViolationChunked Violation = "chunked"
	// ViolationStatusLine: (4.x) a status line not starting "HTTP/1.1 ".
	ViolationStatusLine Violation = "status_line"
	// ViolationLongHeader: (4.x) a response header line over 126
	// characters; the device retries forever.
	ViolationLongHeader Violation = "header_line_too_long"
	// ViolationRangeIgnored: (4.x) a 200 with the whole image to a request
	// for a part of it; the device overshoots and fails.
	ViolationRangeIgnored Violation = "range_ignored"
	// ViolationPushUnreadable: (4.x) a push whose data the naive reader
	// cannot read as the operator meant it; the device drops it silently.
	ViolationPushUnreadable Violation = "push_unreadable"
)

// violationError is a download failure caused by the other side breaking
// the contract, as opposed to an ordinary failure (a 404, a refused
// connection) that a correct operator can also meet.
type violationError struct {
	kind   Violation
	detail string
}

func (e *violationError) Error() string { return string(e.kind) + ": " + e.detail }

func violationf(kind Violation, format string, args ...any) error {
	return &violationError{kind: kind, detail: fmt.Sprintf(format, args...)}
}

// violationOf returns the violation err carries, if any.
func violationOf(err error) (*violationError, bool) {
	var v *violationError
	ok := errors.As(err, &v)
	return v, ok
}

// violation counts a contract violation met by device dn and logs the first
// of each kind: a test that sees one in the log knows what broke without a
// flood of identical lines.
func (f *Fleet) violation(dn string, kind Violation, detail string) {
	first := false
	f.update(func(s *state) {
		s.violations[kind]++
		first = s.violations[kind] == 1
	})
	if first {
		f.cfg.Logger.Info("Contract violation: a device in the field would fail here",
			"kind", kind, "device", dn, "profile", f.cfg.Profile, "detail", detail)
	}
}

// validateProfile checks the settings a profile depends on.
func (c *Config) validateProfile() error {
	switch c.Profile {
	case ProfileLenient, ProfileSDK3:
	case ProfileSDK4:
		if c.Mode != PerDevice {
			return errors.New("profile sdk4 needs per-device connections: the broker subscribes a device by its user name")
		}
		if c.Username != "" {
			return errors.New(`profile sdk4 sets the user name itself ("deviceName&productKey")`)
		}
		if c.LegacyRequest {
			return errors.New("profile sdk4 asks on firmware/get only")
		}
	default:
		return fmt.Errorf("unknown profile %q", c.Profile)
	}
	for host, addr := range c.Hosts {
		if host == "" || strings.ContainsAny(host, ":/@") || !strings.Contains(addr, ":") {
			return fmt.Errorf("hosts: %q → %q: want a bare host name mapped to ip:port", host, addr)
		}
	}
	return nil
}
