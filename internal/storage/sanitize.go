package storage

import (
	"net/url"
	"regexp"
	"strings"
)

// maxMessage bounds a sanitized message; conditions are read by humans.
const maxMessage = 512

var (
	urlPattern = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>]+`)
	// Signature parameters can also appear outside a full URL, for example
	// in a server's echo of the request.
	amzParamPattern = regexp.MustCompile(`(?i)(X-Amz-(Signature|Credential|Security-Token))=[^&\s"']+`)
)

// Sanitize returns err's text in a form safe for a condition, an event or a
// log line: URLs lose their query string and user info (pre-signed URLs are
// bearer tokens), S3 signature parameters and the given secrets are
// redacted, and the text is bounded. It returns "" for a nil error.
func Sanitize(err error, secrets ...string) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	msg = urlPattern.ReplaceAllStringFunc(msg, RedactURL)
	msg = amzParamPattern.ReplaceAllString(msg, "$1=[redacted]")
	if len(msg) > maxMessage {
		msg = msg[:maxMessage] + "..."
	}
	return msg
}

// RedactURL returns raw without user info, query and fragment, for showing
// where something came from without showing how to get it.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		if i := strings.Index(raw, "://"); i >= 0 {
			return raw[:i] + "://[redacted]"
		}
		return "[redacted]"
	}
	suffix := ""
	if u.RawQuery != "" {
		suffix = "?[redacted]"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String() + suffix
}
