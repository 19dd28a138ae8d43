package storage

import (
	"fmt"
	"net/url"
)

// DevicePortWarning returns a human message when the device-facing URL
// names a port other than its scheme's default, and "" otherwise. Devices
// built on the vendor's SDK ignore the port in a download URL (http goes to
// 80, https to 443), so such a URL downloads from the wrong place or not at
// all. The message is meant for a condition and a log line; it is not an
// error because devices with newer SDKs, and the simulator, honour ports.
func DevicePortWarning(u *url.URL) string {
	if u == nil {
		return ""
	}
	port := u.Port()
	if port == "" {
		return ""
	}
	want := map[string]string{"http": "80", "https": "443"}[u.Scheme]
	if port == want {
		return ""
	}
	return fmt.Sprintf("device-facing storage endpoint %s://%s names port %s; devices built on the vendor SDK "+
		"ignore URL ports and download %s URLs from port %s only", u.Scheme, u.Host, port, u.Scheme, want)
}

// DevicePortWarning reports on this client's device-facing endpoint; see
// the package function.
func (m *MinIO) DevicePortWarning() string { return DevicePortWarning(m.publicURL) }
