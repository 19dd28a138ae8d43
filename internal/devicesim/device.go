package devicesim

import (
	"context"
	"crypto/md5" //nolint:gosec // MD5 is part of the device protocol
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/otafleet/otafleet/internal/protocol"
)

// Outcome is the result of a device's latest upgrade attempt.
type Outcome string

// Outcomes.
const (
	OutcomeIdle           Outcome = "idle" // no upgrade received yet
	OutcomeUpgrading      Outcome = "upgrading"
	OutcomeSucceeded      Outcome = "succeeded"
	OutcomeDownloadFailed Outcome = "download_failed"
	OutcomeDigestMismatch Outcome = "digest_mismatch"
	OutcomeFlashFailed    Outcome = "flash_failed"
	OutcomeStuck          Outcome = "stuck"    // never finishes
	OutcomeOffline        Outcome = "offline"  // went offline during the attempt
	OutcomeRejected       Outcome = "rejected" // upgrade for a module the device lacks
)

// device is one simulated device. Its fields after mu are guarded by it.
type device struct {
	f         *Fleet
	name      string
	conn      *conn
	numericID bool // the vendor C SDK sends numeric ids; half the fleet does too

	mu         sync.Mutex
	versions   []string // by index of Config.Modules
	outcome    Outcome
	attempts   int
	busy       bool
	offline    bool
	informed   bool
	nextID     uint32
	lastReport time.Time
}

type message struct {
	topic   string
	payload []byte
}

func (d *device) id() (uint32, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nextID++
	return d.nextID, d.numericID
}

// bootMessages are what the device publishes when its connection comes up:
// one inform per module, then optionally a request per module. An offline
// device publishes nothing.
func (d *device) bootMessages() []message {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.offline {
		return nil
	}
	cfg := &d.f.cfg
	var out []message
	for i, m := range cfg.Modules {
		d.nextID++
		out = append(out, message{protocol.InformTopic(cfg.ProductKey, d.name),
			protocol.Inform{ID: d.nextID, NumericID: d.numericID, Module: m.Name, Version: d.versions[i]}.Encode()})
	}
	if cfg.AskOnBoot {
		for i, m := range cfg.Modules {
			d.nextID++
			if cfg.LegacyRequest {
				out = append(out, message{protocol.RequestTopic(cfg.ProductKey, d.name),
					protocol.Request{ID: d.nextID, Module: m.Name, Version: d.versions[i]}.Encode()})
			} else {
				out = append(out, message{protocol.FirmwareGetTopic(cfg.ProductKey, d.name),
					protocol.GetRequest{ID: d.nextID, Module: m.Name}.Encode()})
			}
		}
	}
	return out
}

func (d *device) markInformed() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.informed {
		d.informed = true
		d.f.update(func(s *state) { s.informed++ })
	}
}

func (d *device) setOutcome(o Outcome) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.setOutcomeLocked(o)
}

func (d *device) setOutcomeLocked(o Outcome) {
	old := d.outcome
	d.outcome = o
	d.f.update(func(s *state) { s.outcomes[old]--; s.outcomes[o]++ })
}

func (d *device) moduleIndex(name string) int {
	for i, m := range d.f.cfg.Modules {
		if m.Name == name {
			return i
		}
	}
	return -1
}

// onUpgrade starts an upgrade attempt unless one is running or the device
// is offline: like a real device, it does not start over on a second push.
func (d *device) onUpgrade(u protocol.Upgrade) {
	d.mu.Lock()
	if d.busy || d.offline {
		d.mu.Unlock()
		d.f.add(&d.f.count.ignored, 1)
		return
	}
	d.busy = true
	attempt := d.attempts
	d.attempts++
	d.mu.Unlock()
	d.f.goroutine(func(ctx context.Context) { d.upgrade(ctx, u, attempt) })
}

// upgrade runs one attempt to its end. Every wait honours ctx, which ends
// when the fleet stops.
func (d *device) upgrade(ctx context.Context, u protocol.Upgrade, attempt int) {
	cfg := &d.f.cfg
	plan := cfg.plan(d.name, attempt)
	mod := d.moduleIndex(u.Module)
	if mod < 0 {
		d.finish(ctx, u.Module, protocol.StepFailed, "no module "+u.Module, OutcomeRejected)
		return
	}
	d.setOutcome(OutcomeUpgrading)
	if !d.report(ctx, u.Module, protocol.StepDownloadStarted, "Enter in downloading state") {
		return
	}
	switch plan {
	case PlanGoOffline:
		d.goOffline(ctx)
		return
	case PlanDownloadFail:
		d.finish(ctx, u.Module, protocol.StepDownloadFailed, "download failed: injected failure", OutcomeDownloadFailed)
		return
	case PlanNeverFinish:
		if !cfg.Instant {
			d.report(ctx, u.Module, 42, "downloading")
		}
		d.setOutcome(OutcomeStuck) // and stays busy: it never takes another push
		return
	case PlanSlowDownload:
		if !d.slowDown(ctx, u.Module) {
			return
		}
	}
	if !cfg.Instant {
		step, desc := d.download(ctx, u)
		if step != 0 {
			d.finish(ctx, u.Module, step, desc, map[protocol.Step]Outcome{
				protocol.StepDownloadFailed: OutcomeDownloadFailed, protocol.StepVerifyFailed: OutcomeDigestMismatch,
			}[step])
			return
		}
	}
	if plan == PlanDigestMismatch {
		d.finish(ctx, u.Module, protocol.StepVerifyFailed, "verify failed: "+string(u.SignMethod)+" mismatch (injected)", OutcomeDigestMismatch)
		return
	}
	if !d.report(ctx, u.Module, protocol.StepDone, "download complete") || !sleep(ctx, cfg.FlashDuration) {
		return
	}
	if plan == PlanFlashFail {
		d.finish(ctx, u.Module, protocol.StepFlashFailed, "flash failed: injected failure", OutcomeFlashFailed)
		return
	}
	d.mu.Lock()
	old := d.versions[mod]
	d.versions[mod] = u.Version
	d.f.update(func(s *state) { s.versions[mod][old]--; s.versions[mod][u.Version]++ })
	d.mu.Unlock()
	id, numeric := d.id()
	// The inform of the new version is the only proof of success.
	d.send(protocol.InformTopic(cfg.ProductKey, d.name),
		protocol.Inform{ID: id, NumericID: numeric, Module: u.Module, Version: u.Version}.Encode())
	d.mu.Lock()
	d.busy = false
	d.setOutcomeLocked(OutcomeSucceeded)
	d.mu.Unlock()
}

// finish reports a failure step and ends the attempt.
func (d *device) finish(ctx context.Context, module string, step protocol.Step, desc string, o Outcome) {
	d.report(ctx, module, step, desc)
	d.mu.Lock()
	d.busy = false
	d.setOutcomeLocked(o)
	d.mu.Unlock()
}

// report publishes a progress report, first waiting out ProgressInterval
// since the previous one unless the fleet is Instant. It returns false when
// the fleet is stopping.
func (d *device) report(ctx context.Context, module string, step protocol.Step, desc string) bool {
	cfg := &d.f.cfg
	if !cfg.Instant {
		d.mu.Lock()
		wait := time.Until(d.lastReport.Add(cfg.ProgressInterval))
		d.mu.Unlock()
		if !sleep(ctx, wait) {
			return false
		}
	}
	d.sendProgress(module, step, desc)
	return ctx.Err() == nil
}

// tryReport reports a percentage only if the interval has passed: progress
// during a download is best effort.
func (d *device) tryReport(module string, pct int) {
	d.mu.Lock()
	due := time.Since(d.lastReport) >= d.f.cfg.ProgressInterval
	d.mu.Unlock()
	if due {
		d.sendProgress(module, protocol.Step(pct), "downloading")
	}
}

func (d *device) sendProgress(module string, step protocol.Step, desc string) {
	id, numeric := d.id()
	d.mu.Lock()
	d.lastReport = time.Now()
	d.mu.Unlock()
	d.send(protocol.ProgressTopic(d.f.cfg.ProductKey, d.name),
		protocol.Progress{ID: id, NumericID: numeric, Module: module, Step: step, Desc: desc}.Encode())
}

func (d *device) send(topic string, payload []byte) {
	// Errors are counted by waitToken; a device carries on like a real one.
	_ = d.conn.publish(topic, payload)
}

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
	sum5 := md5.New() //nolint:gosec // protocol digest
	var sign hash.Hash
	if u.SignMethod == protocol.SignSHA256 {
		sign = sha256.New()
	}
	buf := make([]byte, 32<<10)
	var n int64
	for {
		k, rerr := resp.Body.Read(buf)
		if k > 0 {
			sum5.Write(buf[:k])
			if sign != nil {
				sign.Write(buf[:k])
			}
			n += int64(k)
			if pct := n * 100 / max(u.Size, 1); pct >= 1 && pct <= 99 {
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
	f.add(&f.count.bytes, n)
	if n != u.Size {
		return protocol.StepVerifyFailed, fmt.Sprintf("verify failed: size %d, expected %d", n, u.Size)
	}
	gotMD5 := hex.EncodeToString(sum5.Sum(nil))
	gotSign := gotMD5
	if sign != nil {
		gotSign = hex.EncodeToString(sign.Sum(nil))
	}
	if gotMD5 != u.MD5 || gotSign != u.Sign {
		return protocol.StepVerifyFailed, "verify failed: " + string(u.SignMethod) + " mismatch"
	}
	return 0, ""
}

// goOffline drops the device off the network; with Failures.OfflineFor it
// comes back later and informs its versions, as after a reboot.
func (d *device) goOffline(ctx context.Context) {
	d.mu.Lock()
	d.offline = true
	d.busy = false
	d.setOutcomeLocked(OutcomeOffline)
	d.mu.Unlock()
	perDevice := d.f.cfg.Mode == PerDevice
	if perDevice {
		d.conn.client.Disconnect(0)
		d.conn.setUp(false) // an explicit disconnect is not reported as lost
	}
	back := d.f.cfg.Failures.OfflineFor
	if back <= 0 || !sleep(ctx, back) {
		return
	}
	d.mu.Lock()
	d.offline = false
	d.mu.Unlock()
	if perDevice {
		d.conn.client.Connect() // onConnect subscribes and informs
		return
	}
	for _, m := range d.bootMessages() {
		d.send(m.topic, m.payload)
	}
}

// sleep waits for d or until ctx ends, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
