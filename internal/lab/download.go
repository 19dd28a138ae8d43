package lab

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/download"
	"github.com/otafleet/otafleet/internal/operator"
	"github.com/otafleet/otafleet/internal/storage"
)

// labBucket holds the lab's firmware images.
const labBucket = "otafleet-firmware"

// DefaultDownloadHost is the host name in the lab's download URLs. It does
// not resolve: simulated devices map it to the lab's download server
// (DeviceHosts), as a device's DNS and the default port would.
const DefaultDownloadHost = "dl.otafleet.lab"

// downloadOptions starts the lab's download service, as its own server
// beside the manager (a Deployment of its own in production), so that
// devices keep downloading while the manager restarts; the manager signs
// URLs for it with a secret made for this lab.
func (l *Lab) downloadOptions(o Options) (operator.DownloadOptions, error) {
	addr := o.DownloadAddress
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	secret := make([]byte, 48)
	_, _ = rand.Read(secret)
	store, err := storage.New(storage.Config{Endpoint: l.Storage.Endpoint, Insecure: true,
		AccessKey: l.Storage.AccessKey, SecretKey: l.Storage.SecretKey})
	if err != nil {
		return operator.DownloadOptions{}, err
	}
	srv, err := download.NewServer(download.Config{Secret: secret, Bucket: labBucket, Objects: store})
	if err != nil {
		return operator.DownloadOptions{}, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return operator.DownloadOptions{}, fmt.Errorf("download service on %s: %w", addr, err)
	}
	l.download = &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = l.download.Serve(ln) }()
	l.DownloadHost, l.DownloadAddr = o.DownloadHost, ln.Addr().String()
	if l.DownloadHost == "" {
		l.DownloadHost = DefaultDownloadHost
	}
	return operator.DownloadOptions{URL: "http://" + l.DownloadHost, Secret: secret, TTL: 15 * time.Minute}, nil
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

// Bucket is the bucket the lab's manager keeps images in; a namespace may
// keep device lists under its own prefix there.
func (l *Lab) Bucket() string { return labBucket }
