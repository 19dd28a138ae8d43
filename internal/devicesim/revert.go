package devicesim

import (
	"context"

	"github.com/otafleet/otafleet/internal/protocol"
)

// OutcomeReverted: the device flashed and informed the new version, then
// rolled back to its old one (Failures.Revert).
const OutcomeReverted Outcome = "reverted"

// revert rolls a device back to old after Failures.RevertAfter, as a
// bootloader does whose new image failed its health check after a few
// boots: the device informs the old version again. It is what a campaign's
// soak is there to catch. A device that took another upgrade of the module
// meanwhile keeps it.
func (d *device) revert(ctx context.Context, mod int, module, target, old string, attempt int) {
	if !sleep(ctx, d.f.cfg.Failures.RevertAfter) {
		return
	}
	d.mu.Lock()
	if d.versions[mod] != target {
		d.mu.Unlock()
		return
	}
	d.versions[mod] = old
	d.f.update(func(s *state) { s.versions[mod][target]--; s.versions[mod][old]++ })
	d.history[attempt].Outcome = OutcomeReverted
	if !d.busy {
		d.setOutcomeLocked(OutcomeReverted)
	}
	d.mu.Unlock()
	id, numeric := d.id()
	d.send(protocol.InformTopic(d.f.cfg.ProductKey, d.name),
		protocol.Inform{ID: id, NumericID: numeric, Module: module, Version: old}.Encode())
}
