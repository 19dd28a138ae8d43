package fleet

import "time"

// DefaultMaxPushes is how often one attempt is pushed without an answer
// when a campaign does not say.
const DefaultMaxPushes = 3

// pushAction is what becomes of a NOTIFIED task that has heard nothing
// from its device since its push.
type pushAction int

const (
	keepWaiting pushAction = iota
	repush                 // push the same attempt again
	noResponse             // give up: the device never took a push
)

// silentPush decides for a NOTIFIED task. pushes is how often the attempt
// went out (a task rebuilt from an older record counts as pushed once),
// since is the time since the last push. A device that informs its old
// version again (reconnected) came back without having taken the push, so
// it is due after repushAfter; a device that stays silent is due after
// silence (the campaign's timeout). A device that crashes on every push
// must not be made to crash forever: after maxPushes it fails.
func silentPush(pushes, maxPushes int32, since, repushAfter, silence time.Duration, reconnected bool) pushAction {
	due := (reconnected && since >= repushAfter) || (silence > 0 && since >= silence)
	if !due {
		return keepWaiting
	}
	if maxPushes <= 0 {
		maxPushes = DefaultMaxPushes
	}
	if max(pushes, 1) >= maxPushes {
		return noResponse
	}
	return repush
}
