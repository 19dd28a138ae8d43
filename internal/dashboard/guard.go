package dashboard

import (
	"net"
	"net/http"
	"net/url"
)

// actionHeader must accompany every POST. A cross-site form or fetch cannot
// set it without a CORS preflight, which this server never answers, so
// another web page open in the user's browser cannot steer batches with the
// user's credentials.
const actionHeader = "X-OTA-Dashboard"

// guard refuses requests whose Host is not a loopback name (a DNS
// rebinding page would otherwise read the cluster through us) and POSTs
// without actionHeader or from another origin.
func guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackHost(r.Host) {
			http.Error(w, "the dashboard answers only on a loopback address", http.StatusForbidden)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if r.Header.Get(actionHeader) == "" || !sameOrigin(r) {
				http.Error(w, "cross-site request refused", http.StatusForbidden)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func loopbackHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// sameOrigin accepts a request without Origin (not a browser's
// cross-origin request) or one whose Origin is the host it was sent to.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}
