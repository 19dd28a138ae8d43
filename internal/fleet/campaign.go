package fleet

import (
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/types"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/rollout"
)

// Image is the stored firmware a campaign pushes.
type Image struct {
	Bucket, Key string
	Size        int64
	MD5, SHA256 string
	SignMethod  otav1.SignMethod
	Diff        bool
	// ExtData is sent to devices as the push's extData: the batch's tags and
	// the package's free text.
	ExtData map[string]string
}

// Spec is what a reconciler tells the engine about a campaign. The engine
// keeps the latest Spec; calling Upsert again with changes (pause, rate,
// promote, cancel) takes effect at once.
type Spec struct {
	Ref        otav1.CampaignReference
	Namespace  string
	UID        types.UID
	ProductKey string
	Module     string
	Target     string
	Image      Image

	// Verification makes the campaign strict, as a VerificationRun is:
	// named devices that are unknown, on the target already or on another
	// source version fail instead of being skipped.
	Verification bool
	Dynamic      bool
	// Devices limits the campaign to these names (List scope); nil is all.
	Devices        []string
	GrayPercent    int32
	SourceVersions []string

	RatePerMinute int32
	Waves         []otav1.Wave
	PromotedWaves int32
	Abort         *otav1.AbortPolicy
	RetryCount    int32
	RetryInterval time.Duration
	RetryTimedOut bool
	Timeout       time.Duration
	// MaxPushes is how often one attempt is pushed without any answer
	// before the task fails as NoResponse; rollout.DefaultMaxPushes when
	// zero.
	MaxPushes int32
	// Soak is how long a device on the target is watched before its task
	// succeeds; 0 is no soak.
	Soak time.Duration
	// Windows are the maintenance windows pushes wait for; none is always.
	Windows      rollout.Windows
	Start, End   time.Time
	Confirm      bool
	Overwrite    bool
	Paused       bool
	Cancel       bool
	CancelStates []otav1.TaskState

	// SelectionComplete comes from status: a static campaign whose
	// selection was recorded does not select again after a restart.
	SelectionComplete bool

	// Inputs names the versions of everything the spec was built from
	// (the campaign's generation, its Firmware, its device list): while
	// they are the same, the reconciler reads status with Current instead
	// of building and upserting the spec again.
	Inputs string
}

type campaignKey struct {
	namespace string
	kind      otav1.CampaignKind
	name      string
}

func keyOf(ns string, ref otav1.CampaignReference) campaignKey {
	return campaignKey{namespace: ns, kind: ref.Kind, name: ref.Name}
}

// campaign is the engine's side of one VerificationRun or UpgradeBatch.
type campaign struct {
	key     campaignKey
	spec    Spec
	hasSpec bool
	product *product
	sources map[string]bool
	devices map[string]bool

	tasks     map[string]*task
	slices    []*upgradeSlice
	nextSlice int
	// queue holds tasks that may be pushed, oldest first; entries whose
	// state changed meanwhile are skipped when popped.
	queue []*task
	// again holds tasks queued a second time (retries, re-pushes,
	// confirmations); they go before queue.
	again   []*task
	limiter *rate.Limiter

	counts otav1.TaskCounts
	// unknown counts List names the inventory lacked at selection, with a
	// few examples: a batch skips them, and its status says so.
	unknown         int64
	unknownExamples []string
	reasons         map[string]*otav1.ReasonCount

	stage rollout.Stage
	// cursor is how far a selection taken in steps has come (selectSome).
	cursor      selectCursor
	currentWave int32
	pausedUntil time.Time
	waveHeld    string // why the next wave does not start
	waveGate    otav1.WaveGateType
	heldWave    int32
	// window caches where the campaign stands against its windows until
	// it changes (rollout.WindowState.Valid).
	window            rollout.WindowState
	windowKnown       bool
	aborted           string
	startTime         time.Time
	completionTime    time.Time
	statusDirty       bool
	lastStatusTrigger time.Time
	lastScan          time.Time // when the last walk began
	walk              scanWalk
	scanned           bool
	waveStats         []rollout.WaveStat
	// endApplied and cancelApplied make the schedule's end and a cancel
	// act once: later Upserts repeat the same spec.
	endApplied    bool
	cancelApplied bool
	sliceCount    int // len(slices) when released
}

func (c *campaign) ref() string { return c.spec.Ref.String() }

// setSpec stores a new spec and derives the lookups it needs.
func (c *campaign) setSpec(s Spec) {
	c.spec, c.hasSpec = s, true
	c.windowKnown = false
	c.sources = toSet(s.SourceVersions)
	c.devices = nil
	if s.Devices != nil {
		c.devices = toSet(s.Devices)
	}
	perSecond := rate.Limit(float64(s.RatePerMinute) / 60)
	burst := max(1, int(s.RatePerMinute)/60)
	if c.limiter == nil {
		c.limiter = rate.NewLimiter(perSecond, burst)
	} else if c.limiter.Limit() != perSecond {
		c.limiter.SetLimit(perSecond)
		c.limiter.SetBurst(burst)
	}
}

func toSet(items []string) map[string]bool {
	m := make(map[string]bool, len(items))
	for _, it := range items {
		m[it] = true
	}
	return m
}

// count moves a task between state counters; a reverted task counts in
// reverted, not failed.
func (c *campaign) count(from otav1.TaskState, fromReverted bool, to otav1.TaskState, toReverted bool) {
	if from != "" {
		*bucket(&c.counts, from, fromReverted)--
	} else {
		c.counts.Total++
	}
	*bucket(&c.counts, to, toReverted)++
	c.statusDirty = true
}

func bucket(tc *otav1.TaskCounts, s otav1.TaskState, reverted bool) *int64 {
	if reverted && s == otav1.TaskFailed {
		return &tc.Reverted
	}
	return counter(tc, s)
}

func counter(tc *otav1.TaskCounts, s otav1.TaskState) *int64 {
	switch s {
	case otav1.TaskSoaking:
		return &tc.Soaking
	case otav1.TaskConfirm:
		return &tc.Confirm
	case otav1.TaskQueued:
		return &tc.Queued
	case otav1.TaskNotified:
		return &tc.Notified
	case otav1.TaskInProgress:
		return &tc.InProgress
	case otav1.TaskSucceeded:
		return &tc.Succeeded
	case otav1.TaskFailed:
		return &tc.Failed
	case otav1.TaskTimedOut:
		return &tc.TimedOut
	default:
		return &tc.Canceled
	}
}

func (c *campaign) addReason(reason, example string, delta int64) {
	if reason == "" {
		return
	}
	if c.reasons == nil {
		c.reasons = map[string]*otav1.ReasonCount{}
	}
	r := c.reasons[reason]
	if r == nil {
		r = &otav1.ReasonCount{Reason: reason}
		c.reasons[reason] = r
	}
	r.Count += delta
	if example != "" {
		r.Example = example
	}
}

func (c *campaign) active() int64 {
	return c.counts.Confirm + c.counts.Queued + c.counts.Notified + c.counts.InProgress + c.counts.Soaking
}

// windowAt is where the campaign stands against its maintenance windows,
// asked of the cron schedules only when the last answer expired.
func (c *campaign) windowAt(now time.Time) rollout.WindowState {
	if !c.windowKnown || !c.window.Valid(now) {
		c.window, c.windowKnown = c.spec.Windows.At(now), true
		c.statusDirty = true
	}
	return c.window
}

// over reports whether the campaign accepts no new work.
func (c *campaign) over(now time.Time) bool { return c.snapshot().Over(now) }

// snapshot is what the campaign's phase and next check are decided on.
func (c *campaign) snapshot() rollout.Snapshot {
	return rollout.Snapshot{
		Stage: c.stage, Aborted: c.aborted != "", Canceled: c.spec.Cancel, Paused: c.spec.Paused,
		Dynamic: c.spec.Dynamic, WaveHeld: c.waveHeld != "", WaveGate: c.waveGate, Active: c.active(),
		Start: c.spec.Start, End: c.spec.End, PausedTil: c.pausedUntil, Window: c.window,
	}
}

// selectNow runs the first selection once the schedule allows it.
func (e *Engine) selectNow(c *campaign, now time.Time) {
	if c.stage == rollout.Waiting && !now.Before(c.spec.Start) && !c.over(now) {
		if !e.selectSome(c, now, maxSelectPerTick) {
			e.kick() // the next step at once
			return
		}
		c.stage = rollout.Selected
	}
}
