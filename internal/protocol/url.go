package protocol

import (
	"fmt"
	"net/url"
	"strings"
)

// Limits on a download URL that devices built on the vendor's SDKs take
// (PROTOCOL.md): they copy the host and the path (query included) each into
// a 256-byte buffer without a check, and resolve everything between "://"
// and the first "/" as a host name.
const (
	MaxDeviceURL  = 199 // bytes in all, to be safe
	MaxDevicePath = 255 // path and query
	MaxDeviceHost = 255
)

// CheckDeviceURL returns why a device could not download from raw, or nil:
// an absolute http(s) URL without port or userinfo, within the limits.
func CheckDeviceURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("not an absolute http or https URL")
	}
	switch {
	case u.User != nil:
		return fmt.Errorf("the URL carries userinfo, which devices resolve as part of the host name")
	case u.Port() != "" || strings.HasSuffix(u.Host, ":"):
		return fmt.Errorf("the URL names port %q; devices ignore ports and resolve host:port as a host name", u.Port())
	case len(u.Host) > MaxDeviceHost:
		return fmt.Errorf("the host is %d bytes, over the devices' %d", len(u.Host), MaxDeviceHost)
	case len(raw) > MaxDeviceURL:
		return fmt.Errorf("the URL is %d bytes, over the %d devices take safely", len(raw), MaxDeviceURL)
	}
	if p := len(raw) - len(u.Scheme+"://"+u.Host); p > MaxDevicePath {
		return fmt.Errorf("the path and query are %d bytes, over the devices' %d", p, MaxDevicePath)
	}
	return nil
}
