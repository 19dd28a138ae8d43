package devicesim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/otafleet/otafleet/internal/protocol"
)

// ending is how a download attempt ends.
type ending struct {
	step  protocol.Step // 0: downloaded and verified; else the failure to report
	desc  string
	hang  bool // the device retries forever: it reports nothing more for this push
	crash bool // the device dies (a stack overflow in the field)
}

// fetch downloads and verifies u as the fleet's profile does. Instant
// fleets skip the transfer, but strict profiles still check the URL: no
// test should pass with a URL a device would die on.
func (d *device) fetch(ctx context.Context, u protocol.Upgrade) ending {
	if !d.f.cfg.Profile.strict() {
		if d.f.cfg.Instant {
			return ending{}
		}
		step, desc := d.download(ctx, u)
		return ending{step: step, desc: desc}
	}
	target, err := parseDeviceURL(u.URL)
	if err == nil && !d.f.cfg.Instant {
		g := newDigests(u.SignMethod)
		if d.f.cfg.Profile == ProfileSDK3 {
			err = d.get3(ctx, target, u, g)
		} else {
			err = d.get4(ctx, target, u, g)
		}
		if err == nil {
			d.f.add(&d.f.count.downloads, 1)
			step, desc := g.check(u)
			return ending{step: step, desc: desc}
		}
	}
	if err == nil {
		return ending{}
	}
	return d.failed(err)
}

// failed turns a download error into what the device does about it.
func (d *device) failed(err error) ending {
	fail := ending{step: protocol.StepDownloadFailed, desc: "download failed: " + err.Error()}
	v, ok := violationOf(err)
	if !ok {
		return fail
	}
	d.f.violation(d.name, v.kind, v.detail)
	switch {
	case v.kind == ViolationURLTooLong && d.f.cfg.Profile == ProfileSDK3:
		return ending{crash: true}
	case v.kind == ViolationURLHost, v.kind == ViolationLongHeader:
		return ending{hang: true}
	}
	return fail
}

// get3 downloads as the C SDK 3.x does: one request without Range, status
// 200 and a Content-Length, nothing else.
func (d *device) get3(ctx context.Context, t deviceURL, u protocol.Upgrade, g *digests) error {
	resp, err := rawGet(ctx, rawRequest{addr: d.f.cfg.dialAddr(t), tls: d.f.downloadTLS(t), url: t})
	if err != nil {
		return err
	}
	defer resp.close()
	if err := checkStatus(resp, 200); err != nil {
		return err
	}
	if resp.chunked {
		return violationf(ViolationChunked, "a chunked response")
	}
	if resp.contentLength < 0 {
		return violationf(ViolationContentLength, "no Content-Length")
	}
	// The SDK reports as it fetches, and so does the application's loop
	// around it: backends see the same step twice.
	d.sendProgress(u.Module, protocol.StepDownloadStarted, "downloading")
	_, err = d.readBody(resp.body, resp.contentLength, 0, u, g)
	return err
}

// checkStatus refuses a redirect (a violation) and any status but the
// wanted ones (an ordinary failure, such as a 404).
func checkStatus(resp *rawResponse, want ...int) error {
	for _, w := range want {
		if resp.status == w {
			return nil
		}
	}
	if resp.status >= 300 && resp.status < 400 {
		return violationf(ViolationRedirect, "HTTP %d: devices follow no redirect", resp.status)
	}
	return fmt.Errorf("HTTP %d", resp.status)
}

// downloadTLS is the TLS configuration for an https URL, nil for http.
func (f *Fleet) downloadTLS(t deviceURL) *tls.Config {
	if t.scheme != "https" {
		return nil
	}
	if f.cfg.DownloadTLS != nil {
		return f.cfg.DownloadTLS
	}
	return &tls.Config{MinVersion: tls.VersionTLS12}
}

// errCut marks the connection a 4.x device drops on purpose, to exercise
// the backend's answer to a resume.
var errCut = errors.New("connection cut halfway (simulated)")

// crash kills the device for good, as the stack overflow does in the
// field: in per-device mode its connection drops; on a shared connection it
// falls silent.
func (d *device) crash(ctx context.Context) {
	d.mu.Lock()
	d.offline = true
	d.busy = false
	d.setOutcomeLocked(OutcomeCrashed)
	d.mu.Unlock()
	if d.f.cfg.Mode == PerDevice {
		d.conn.disconnect(ctx)
	}
}
