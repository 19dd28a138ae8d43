package fleet

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/protocol"
	"github.com/otafleet/otafleet/internal/rollout"
)

// Publisher sends messages to devices; the MQTT gateway implements it.
type Publisher interface {
	PublishUpgrade(ctx context.Context, productKey, deviceName string, u protocol.Upgrade) error
	PublishGetReply(ctx context.Context, productKey, deviceName, requestID string, u *protocol.Upgrade) error
	PublishRequestReply(ctx context.Context, productKey, deviceName string, u *protocol.Upgrade) error
}

// URLSigner makes the pre-signed download URLs devices fetch images from.
type URLSigner interface {
	PresignGet(ctx context.Context, bucket, key string) (string, error)
}

// Options tune the engine.
type Options struct {
	// FlushInterval is the coalescing window: a dirty slice is written at
	// most once per interval. Status does not wait for it (it comes from
	// memory); it bounds what a crash can lose.
	FlushInterval time.Duration
	// WriteRate is the slice writes per second the engine aims to stay
	// under: after a flush of many slices the next one waits until the
	// rate allows it (at most MaxFlushInterval), so that a rollout of many
	// devices writes each slice fewer times instead of keeping the API
	// server busy. Default 100.
	WriteRate int
	// MaxFlushInterval bounds that wait, and so what a crash can lose
	// under load. Default 10 s.
	MaxFlushInterval time.Duration
	// TickInterval is how often pushes, timeouts and retries are handled.
	TickInterval time.Duration
	// MaxPushPerSecond caps pushes across all campaigns; 0 is no cap.
	MaxPushPerSecond int
	// IgnoreCampaignRate pushes as fast as MaxPushPerSecond allows,
	// whatever a campaign's ratePerMinute; for benchmarks and labs.
	IgnoreCampaignRate bool
	// LongURLs lets pushes carry URLs that devices built on the vendor's
	// SDKs cannot take (S3 pre-signed URLs, ports): an explicit opt-in.
	LongURLs bool
	// Writers is the number of concurrent slice writes.
	Writers int
	// RepushAfter: a device that informs its old version this long after
	// it was pushed has not received the push (it was offline), and is
	// pushed again. Shorter would re-push devices whose boot inform crossed
	// the push on the wire.
	RepushAfter time.Duration
	// RebuiltRepushAfter: a task found NOTIFIED at start-up may never have
	// been pushed (the last leader stopped between writing the state and
	// publishing), and a device that was pushed reports progress at once:
	// one that has not after this long is pushed again. Default 30 s.
	RebuiltRepushAfter time.Duration
	// ProductKey, when set, limits the engine to one product: it rebuilds,
	// registers and pushes for that productKey only. A replica that owns
	// products by Lease (internal/shard) runs one such engine per product.
	ProductKey string
}

func (o *Options) defaults() {
	if o.FlushInterval == 0 {
		o.FlushInterval = time.Second
	}
	if o.WriteRate == 0 {
		o.WriteRate = 100
	}
	if o.MaxFlushInterval == 0 {
		o.MaxFlushInterval = 10 * time.Second
	}
	if o.TickInterval == 0 {
		o.TickInterval = 50 * time.Millisecond
	}
	if o.Writers == 0 {
		o.Writers = 8
	}
	if o.RepushAfter == 0 {
		o.RepushAfter = 5 * time.Second
	}
	if o.RebuiltRepushAfter == 0 {
		o.RebuiltRepushAfter = 30 * time.Second
	}
}

// Engine is the rollout engine. Create it with New, start it with Start (a
// manager Runnable that needs leader election), feed it device messages
// with HandleBatch and campaigns with Upsert.
type Engine struct {
	reader client.Reader
	opts   Options
	log    logr.Logger
	now    func() time.Time
	// The shell's parts with I/O: the sender publishes to devices, the
	// writer writes slices; the notifiers (notify.go) tell the rest.
	sender sender
	writer sliceWriter

	flushMu   sync.Mutex
	mu        timedMutex
	ready     bool
	products  map[string]*product
	byName    map[types.NamespacedName]*product
	campaigns map[campaignKey]*campaign
	push      pushLimiter
	stats     Stats
	wake      chan struct{}
	readyCh   chan struct{}
	outbox    chan []outgoing
	notify    notifiers
	stopped   chan struct{}
	// sendStopped is closed once the sender published its last message.
	sendStopped chan struct{}
	early       earlyReports
	durable     durability
}

// Rebuilt is closed once Start rebuilt the state: the engine takes work.
func (e *Engine) Rebuilt() <-chan struct{} { return e.readyCh }

// Stopped is closed once Start returned: nothing is published after it.
func (e *Engine) Stopped() <-chan struct{} { return e.stopped }

// New returns an engine that writes slices with c and rebuilds from reader
// (an uncached reader is best: the engine holds the state itself).
func New(c client.Client, reader client.Reader, pub Publisher, signer URLSigner, opts Options, log logr.Logger) *Engine {
	opts.defaults()
	e := &Engine{
		reader: reader, opts: opts, log: log,
		sender:      sender{pub: pub, signer: signer, longURLs: opts.LongURLs, log: log},
		now:         time.Now,
		products:    map[string]*product{},
		byName:      map[types.NamespacedName]*product{},
		campaigns:   map[campaignKey]*campaign{},
		push:        newPushLimiter(opts.MaxPushPerSecond),
		wake:        make(chan struct{}, 1),
		readyCh:     make(chan struct{}),
		outbox:      make(chan []outgoing, 64),
		stopped:     make(chan struct{}),
		sendStopped: make(chan struct{}),
	}
	e.writer = sliceWriter{client: c, writers: opts.Writers, log: log, count: e.countWrite}
	e.durable.urgent = make(chan struct{}, 1)
	return e
}

// countWrite records a slice write's result in the stats.
func (e *Engine) countWrite(err error) {
	e.mu.Lock()
	defer e.unlock()
	e.stats.Writes++
	if err != nil {
		e.stats.WriteErrors++
	}
}

// NeedLeaderElection makes the manager run the engine on the leader only.
func (e *Engine) NeedLeaderElection() bool { return true }

// Owns reports whether the engine is the one for productKey: every key
// when it is not limited to one product. The empty key (a campaign whose
// product is not known yet) belongs to the engine for every product only.
func (e *Engine) Owns(productKey string) bool {
	return e.opts.ProductKey == "" || e.opts.ProductKey == productKey
}

// Ready reports whether the engine rebuilt its state and takes work.
func (e *Engine) Ready() bool {
	e.mu.Lock()
	defer e.unlock()
	return e.ready
}

// SyncProduct registers or updates a product. When two Products claim one
// productKey the oldest keeps it; SyncProduct reports whether p owns it.
func (e *Engine) SyncProduct(p *otav1.Product) bool {
	e.mu.Lock()
	defer e.unlock()
	nn := types.NamespacedName{Namespace: p.Namespace, Name: p.Name}
	if !e.Owns(p.Spec.ProductKey) {
		return false
	}
	if cur, ok := e.products[p.Spec.ProductKey]; ok && cur.uid != p.UID {
		return false
	}
	pr := e.products[p.Spec.ProductKey]
	isNew := pr == nil
	if isNew {
		pr = &product{key: p.Spec.ProductKey, devices: map[string]*device{}, campaigns: map[*campaign]struct{}{},
			versions: versionCounts{}}
		e.products[pr.key] = pr
	}
	pr.namespace, pr.name, pr.uid = p.Namespace, p.Name, p.UID
	e.byName[nn] = pr
	if isNew {
		e.replayEarly(pr)
	}
	return true
}

// RemoveProduct forgets a deleted product; its slices go with it through
// their owner references.
func (e *Engine) RemoveProduct(nn types.NamespacedName) {
	e.mu.Lock()
	defer e.unlock()
	if pr := e.byName[nn]; pr != nil {
		delete(e.byName, nn)
		delete(e.products, pr.key)
	}
}

// ProductKeyOf returns the productKey of a registered Product.
func (e *Engine) ProductKeyOf(nn types.NamespacedName) (string, bool) {
	e.mu.Lock()
	defer e.unlock()
	pr := e.byName[nn]
	if pr == nil {
		return "", false
	}
	return pr.key, true
}

// Upsert creates or updates a campaign and returns its status. It selects
// devices the first time (and, for dynamic campaigns, keeps selecting as
// devices report).
func (e *Engine) Upsert(s Spec) (Status, error) {
	e.mu.Lock()
	defer e.unlock()
	if !e.ready {
		return Status{}, ErrNotReady
	}
	pr := e.products[s.ProductKey]
	if pr == nil {
		return Status{}, ErrUnknownProduct
	}
	key := keyOf(s.Namespace, s.Ref)
	c := e.campaigns[key]
	if c == nil {
		c = &campaign{key: key, tasks: map[string]*task{}}
		e.campaigns[key] = c
	}
	if c.product == nil {
		c.product = pr
		pr.campaigns[c] = struct{}{}
	}
	first := !c.hasSpec
	c.setSpec(s)
	now := e.now()
	if first {
		e.settleLoaded(c, now)
	}
	if s.SelectionComplete {
		c.stage = max(c.stage, rollout.Recorded)
	}
	e.selectNow(c, now)
	e.applyCancel(c, now)
	e.advance(c, now)
	e.kick()
	return e.status(c, now), nil
}

// Current returns a campaign's status if the engine holds it with a spec
// built from inputs; otherwise the caller builds the spec and upserts it.
// It is the reconcilers' status read: it selects nothing and rebuilds
// nothing.
func (e *Engine) Current(namespace string, ref otav1.CampaignReference, inputs string) (Status, bool) {
	e.mu.Lock()
	defer e.unlock()
	c := e.campaigns[keyOf(namespace, ref)]
	if !e.ready || c == nil || !c.hasSpec || inputs == "" || c.spec.Inputs != inputs {
		return Status{}, false
	}
	return e.status(c, e.now()), true
}

// Remove forgets a deleted campaign and frees the devices it held.
func (e *Engine) Remove(namespace string, ref otav1.CampaignReference) {
	e.mu.Lock()
	defer e.unlock()
	key := keyOf(namespace, ref)
	c := e.campaigns[key]
	if c == nil {
		return
	}
	for _, t := range c.tasks {
		if t.dev.task == t {
			t.dev.task = nil
		}
	}
	if c.product != nil {
		delete(c.product.campaigns, c)
	}
	delete(e.campaigns, key)
}

// Status returns a campaign's status, or false when the engine has none.
func (e *Engine) Status(namespace string, ref otav1.CampaignReference) (Status, bool) {
	e.mu.Lock()
	defer e.unlock()
	c := e.campaigns[keyOf(namespace, ref)]
	if c == nil || !c.hasSpec {
		return Status{}, false
	}
	return e.status(c, e.now()), true
}

func (e *Engine) kick() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// SetPublisher sets the publisher after New, for the gateway that needs the
// engine as its handler first. Call it before Start.
func (e *Engine) SetPublisher(p Publisher) {
	e.mu.Lock()
	defer e.unlock()
	e.sender.pub = p
}

// settleLoaded: a campaign rebuilt from its slices learns its target only
// with its first Upsert; devices that informed the target meanwhile (their
// inventory version says so) succeeded.
func (e *Engine) settleLoaded(c *campaign, now time.Time) {
	policy := rollout.Retry{Count: c.spec.RetryCount, Interval: c.spec.RetryInterval, TimedOut: c.spec.RetryTimedOut}
	for _, t := range c.tasks {
		if t.dev.task != t || !t.state.Active() {
			continue
		}
		// The inventory holds what the device reported last, also while
		// the campaign had no spec: on the target, its upgrade is done
		// (into the soak); back on another version, a soak reverted.
		v, ok := t.dev.version(c.spec.Module)
		if ok && (v == c.spec.Target || t.state == otav1.TaskSoaking) {
			e.informTask(t, v, now)
			continue
		}
		// A failure waiting for its retry: the policy decides now whether
		// it is one (a failure applied before the spec came waits so).
		if t.state == otav1.TaskQueued && t.attempt > 0 && t.retryAt > 0 && t.reason != "" {
			to := otav1.TaskFailed
			if t.reason == otav1.FailureTimeout {
				to = otav1.TaskTimedOut
			}
			if rollout.AfterFailure(to, t.attempt, policy, c.over(now), now).IsZero() {
				e.finish(t, to, t.reason, t.message, now)
			}
		}
	}
}
