package lab

import (
	"context"
	"crypto/rand"
	"net"
	"net/http"
	"time"

	"github.com/otafleet/otafleet/internal/devicesim"
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

// FleetConfig completes a simulated fleet's configuration for this lab: the
// broker, how devices resolve the download host, and, unless cfg says
// otherwise, the strict sdk3 profile, so that a URL, a push or a download
// answer that a device in the field could not take fails the run.
func (l *Lab) FleetConfig(cfg devicesim.Config) devicesim.Config {
	if cfg.Broker == "" {
		cfg.Broker = l.BrokerURL
	}
	if cfg.Profile == "" {
		cfg.Profile = devicesim.ProfileSDK3
	}
	if cfg.Hosts == nil {
		cfg.Hosts = l.DeviceHosts()
	}
	if cfg.Profile == devicesim.ProfileLenient && cfg.HTTPClient == nil {
		cfg.HTTPClient = hostsClient(cfg.Hosts)
	}
	return cfg
}

// hostsClient is an HTTP client that dials mapped hosts at their address,
// for the lenient profile.
func hostsClient(hosts map[string]string) *http.Client {
	var d net.Dialer
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, _, err := net.SplitHostPort(addr); err == nil && hosts[host] != "" {
			addr = hosts[host]
		}
		return d.DialContext(ctx, network, addr)
	}
	return &http.Client{Transport: t, Timeout: 5 * time.Minute}
}
