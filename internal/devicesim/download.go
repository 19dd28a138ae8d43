package devicesim

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/otafleet/otafleet/internal/protocol"
)

// slowDown stretches the download by SlowDownloadDelay, reporting a crawl
// of percentages meanwhile.
func (d *device) slowDown(ctx context.Context, module string) bool {
	cfg := &d.f.cfg
	if cfg.Instant {
		return sleep(ctx, cfg.Failures.SlowDownloadDelay)
	}
	deadline := time.Now().Add(cfg.Failures.SlowDownloadDelay)
	for pct := 1; time.Until(deadline) > 0; pct = min(pct+1, 50) {
		if !sleep(ctx, min(cfg.ProgressInterval, time.Until(deadline))) {
			return false
		}
		d.tryReport(module, pct)
	}
	return true
}

// download fetches the image and checks size, MD5 and the digest named by
// the sign method. It returns step 0 on success, else the failure step and
// a description for the progress report.
func (d *device) download(ctx context.Context, u protocol.Upgrade) (protocol.Step, string) {
	f := d.f
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.URL, nil)
	if err != nil {
		return protocol.StepDownloadFailed, "download failed: " + err.Error()
	}
	resp, err := f.cfg.HTTPClient.Do(req)
	if err != nil {
		return protocol.StepDownloadFailed, "download failed: " + err.Error()
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return protocol.StepDownloadFailed, fmt.Sprintf("download failed: HTTP %d", resp.StatusCode)
	}
	g := newDigests(u.SignMethod)
	buf := make([]byte, 32<<10)
	for {
		k, rerr := resp.Body.Read(buf)
		if k > 0 {
			g.Write(buf[:k])
			if pct := g.n * 100 / max(u.Size, 1); pct >= 1 && pct <= 99 {
				d.tryReport(u.Module, int(pct))
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return protocol.StepDownloadFailed, "download failed: " + rerr.Error()
		}
	}
	f.add(&f.count.downloads, 1)
	f.add(&f.count.bytes, g.n)
	return g.check(u)
}
