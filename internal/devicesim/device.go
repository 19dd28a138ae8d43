package devicesim

import (
	"context"
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
	OutcomeUpgradeFailed  Outcome = "upgrade_failed" // step -1 after a good download
	OutcomeStuck          Outcome = "stuck"          // never finishes
	OutcomeOffline        Outcome = "offline"        // went offline during the attempt
	OutcomeRejected       Outcome = "rejected"       // upgrade for a module the device lacks
	OutcomeCrashed        Outcome = "crashed"        // died on a URL it could not hold (sdk3), offline for good
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
	history    []Attempt // one per attempt, for the record
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
		// 3.x informs what its platform layer holds with a string id, then
		// the application informs again with a numeric one.
		if cfg.Profile == ProfileSDK3 {
			d.nextID++
			out = append(out, message{protocol.InformTopic(cfg.ProductKey, d.name),
				protocol.Inform{ID: d.nextID, Module: m.Name, Version: d.versions[i]}.Encode()})
		}
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
	// Every outcome but success is set while its attempt is the current
	// one; upgrade records success by attempt, since the next attempt may
	// have started by the time it informed the new version.
	if n := len(d.history); n > 0 && o != OutcomeSucceeded {
		d.history[n-1].Outcome = o
	}
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
	d.history = append(d.history, Attempt{Module: u.Module, Version: u.Version, Outcome: OutcomeUpgrading, Pushed: stamp()})
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
	if !d.report(ctx, u.Module, protocol.StepDownloadStarted, enterDownloading) {
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
	if !d.fetched(ctx, u) {
		return
	}
	switch plan {
	case PlanDigestMismatch:
		d.finish(ctx, u.Module, protocol.StepVerifyFailed, "verify failed: "+string(u.SignMethod)+" mismatch (injected)", OutcomeDigestMismatch)
		return
	case PlanUpgradeFail:
		d.finish(ctx, u.Module, protocol.StepFailed, "upgrade failed: injected failure", OutcomeUpgradeFailed)
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
	d.history[attempt].Flashed = true
	d.f.update(func(s *state) { s.versions[mod][old]--; s.versions[mod][u.Version]++ })
	d.mu.Unlock()
	// Flashed: the device is idle again and takes the next push (for
	// another module) as soon as it has informed, like a real one.
	d.mu.Lock()
	d.busy = false
	d.mu.Unlock()
	// The inform of the new version is the only proof of success.
	if cfg.RebootAfterFlash {
		d.reboot(ctx)
	} else {
		id, numeric := d.id()
		d.send(protocol.InformTopic(cfg.ProductKey, d.name),
			protocol.Inform{ID: id, NumericID: numeric, Module: u.Module, Version: u.Version}.Encode())
	}
	d.mu.Lock()
	d.history[attempt].Outcome = OutcomeSucceeded
	d.history[attempt].Reported = stamp()
	if !d.busy { // unless the next upgrade already started
		d.setOutcomeLocked(OutcomeSucceeded)
	}
	d.mu.Unlock()
	if plan == PlanRevert {
		d.revert(ctx, mod, u.Module, u.Version, old, attempt)
	}
}

// fetched downloads and verifies the image, and reports whether the attempt
// goes on: a failed download is reported, a device that hangs stays busy
// and silent, a crashed one goes offline for good.
func (d *device) fetched(ctx context.Context, u protocol.Upgrade) bool {
	e := d.fetch(ctx, u)
	switch {
	case e.crash:
		d.crash(ctx)
	case e.hang:
		d.setOutcome(OutcomeStuck) // and stays busy: in the field it retries forever
	case e.step != 0:
		d.finish(ctx, u.Module, e.step, e.desc, map[protocol.Step]Outcome{
			protocol.StepDownloadFailed: OutcomeDownloadFailed, protocol.StepVerifyFailed: OutcomeDigestMismatch,
		}[e.step])
	default:
		return true
	}
	return false
}

// finish reports a failure step and ends the attempt.
func (d *device) finish(ctx context.Context, module string, step protocol.Step, desc string, o Outcome) {
	d.report(ctx, module, step, desc)
	d.mu.Lock()
	d.busy = false
	if n := len(d.history); n > 0 {
		d.history[n-1].Reported = stamp()
	}
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
	d.mu.Lock()
	d.lastReport = time.Now()
	d.mu.Unlock()
	d.send(protocol.ProgressTopic(d.f.cfg.ProductKey, d.name), d.progressPayload(module, step, desc))
}

// enterDownloading is the description of the download-start report.
const enterDownloading = "Enter in downloading state"

// sdk3Started is what the C SDK 3.x itself sends when a download starts,
// byte for byte: id 0 and no module, whatever module is upgraded.
const sdk3Started = `{"id":0,"params":{"step":"0","desc":"Enter in downloading state"}}`

func (d *device) progressPayload(module string, step protocol.Step, desc string) []byte {
	if d.f.cfg.Profile == ProfileSDK3 && step == protocol.StepDownloadStarted && desc == enterDownloading {
		return []byte(sdk3Started)
	}
	id, numeric := d.id()
	return protocol.Progress{ID: id, NumericID: numeric, Module: module, Step: step, Desc: desc}.Encode()
}

// resendInterval is how long a device waits before publishing again a
// message the broker did not acknowledge.
const resendInterval = time.Second

// send publishes a QoS 1 message until the broker acknowledges it: a device
// keeps a report it got no PUBACK for (the connection broke, the broker
// restarted) and sends it again once connected, as MQTT clients with a QoS 1
// queue do, so that a broker restart does not erase what it reported. A
// device that went offline drops it, as a power cut would. Errors are
// counted by waitToken.
func (d *device) send(topic string, payload []byte) {
	for d.conn.publish(topic, payload) != nil {
		d.mu.Lock()
		offline := d.offline
		d.mu.Unlock()
		if offline || !sleep(d.f.ctx, resendInterval) {
			return
		}
	}
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
		d.conn.disconnect(ctx)
	}
	back := d.f.cfg.Failures.OfflineFor
	if back <= 0 || !sleep(ctx, back) {
		return
	}
	d.mu.Lock()
	d.offline = false
	d.mu.Unlock()
	if perDevice {
		d.conn.reconnect(ctx) // onConnect subscribes and informs
		return
	}
	for _, m := range d.bootMessages() {
		d.send(m.topic, m.payload)
	}
}

// reboot restarts the device: in per-device mode it drops and remakes its
// connection, whose onConnect informs every module; on a shared connection
// it only informs every module.
func (d *device) reboot(ctx context.Context) {
	if d.f.cfg.Mode != PerDevice {
		for _, m := range d.bootMessages() {
			d.send(m.topic, m.payload)
		}
		return
	}
	c := d.conn
	c.disconnect(ctx)
	c.reconnect(ctx) // onConnect subscribes and informs every module
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
