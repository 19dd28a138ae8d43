package fleet

import (
	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// Hold stops a campaign from pushing when its reconciler cannot build a
// spec for it: its Firmware stopped being Ready, or its Product is being
// deleted. Without cancel the campaign is paused until its next Upsert
// (tasks already pushed carry on, as with spec.paused); with cancel its
// active tasks end CANCELED and free their devices, for good. It reports
// the campaign's status, or false when the engine has no such campaign.
func (e *Engine) Hold(namespace string, ref otav1.CampaignReference, cancel bool) (Status, bool) {
	e.mu.Lock()
	defer e.unlock()
	c := e.campaigns[keyOf(namespace, ref)]
	if c == nil || !c.hasSpec {
		return Status{}, false
	}
	now := e.now()
	c.spec.Paused = true
	// The spec no longer matches its inputs: once the reason for the hold
	// is gone, the next reconcile upserts the spec again.
	c.spec.Inputs = ""
	if cancel {
		c.spec.Cancel, c.spec.CancelStates = true, nil
		e.applyCancel(c, now)
	}
	c.statusDirty = true
	e.advance(c, now)
	e.kick()
	return e.status(c, now), true
}
