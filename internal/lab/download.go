package lab

import (
	"crypto/rand"
	"fmt"
	"net"
	"time"

	"github.com/otafleet/otafleet/internal/operator"
)

// DefaultDownloadHost is the host name in the lab's download URLs. It does
// not resolve: simulated devices map it to the lab's download server
// (DeviceHosts), as a device's DNS and the default port would.
const DefaultDownloadHost = "dl.otafleet.lab"

// downloadOptions serves downloads from the manager on one address for
// the lab's whole life, so that devices keep reaching it across manager
// restarts, and signs URLs with a secret made for this lab.
func (l *Lab) downloadOptions(o Options) (operator.DownloadOptions, error) {
	addr := o.DownloadAddress
	if addr == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return operator.DownloadOptions{}, err
		}
		addr = ln.Addr().String()
		_ = ln.Close() // the manager binds it again
	}
	l.DownloadHost, l.DownloadAddr = o.DownloadHost, addr
	if l.DownloadHost == "" {
		l.DownloadHost = DefaultDownloadHost
	}
	secret := make([]byte, 48)
	_, _ = rand.Read(secret)
	return operator.DownloadOptions{
		URL: "http://" + l.DownloadHost, Secret: secret, TTL: 15 * time.Minute, BindAddress: addr,
	}, nil
}

// DeviceHosts is how simulated devices resolve download hosts: the lab's
// download host name stands for its server's address (port 80 for a device
// in the field).
func (l *Lab) DeviceHosts() map[string]string {
	return map[string]string{l.DownloadHost: l.DownloadAddr}
}

// DownloadURL is the base of the lab's download URLs.
func (l *Lab) DownloadURL() string { return fmt.Sprintf("http://%s", l.DownloadHost) }
