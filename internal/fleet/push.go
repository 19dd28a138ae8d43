package fleet

import (
	"time"

	"golang.org/x/time/rate"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/protocol"
)

// publishTimeout bounds one publish; a slow broker delays a push, it does
// not stall the engine.
const publishTimeout = 10 * time.Second

// sendWorkers is how many publishes wait for their PUBACK at once: QoS 1
// costs a round trip each, so throughput is about sendWorkers per RTT.
const sendWorkers = 64

// outgoing is one message to a device, prepared under the lock and sent
// outside it.
type outgoing struct {
	kind    protocol.Kind // KindUpgrade for a push, else the request's kind
	pk      string
	device  string
	id      string
	has     bool
	image   Image
	module  string
	version string
	task    *task // pushes only: reverted to QUEUED if the publish fails
}

// pushLimiter caps pushes across campaigns.
type pushLimiter struct{ lim *rate.Limiter }

func newPushLimiter(perSecond int) pushLimiter {
	if perSecond <= 0 {
		return pushLimiter{}
	}
	return pushLimiter{lim: rate.NewLimiter(rate.Limit(perSecond), perSecond)}
}

// take returns how many of want pushes may go now.
func (p pushLimiter) take(now time.Time, want int) int {
	if p.lim == nil || want == 0 {
		return want
	}
	n := min(want, int(p.lim.TokensAt(now)))
	if n > 0 {
		p.lim.AllowN(now, n)
	}
	return n
}

// maxPushesPerTick bounds the pushes one tick takes, all campaigns
// together, and so the time it holds the lock (about 2 us a push): a
// million devices pushed at once held it 2 s. A tick that reaches it
// wakes the loop for the next one at once.
const maxPushesPerTick = 10000

// collectPushes pops the tasks a running campaign may push now, marks them
// NOTIFIED and returns them as outgoing pushes, adding to out (this tick's
// pushes so far).
func (e *Engine) collectPushes(c *campaign, now time.Time, out []outgoing) []outgoing {

	if !e.pushing(c, now) || len(c.queue)+len(c.again) == 0 {
		return out
	}
	budget := min(len(c.queue)+len(c.again), maxPushesPerTick-len(out))
	if !e.opts.IgnoreCampaignRate {
		budget = min(budget, int(c.limiter.TokensAt(now)))
	}
	if budget <= 0 {
		return out
	}
	budget = e.push.take(now, budget)
	pushed := 0
	push := func(t *task) {
		t.queued, t.unsure = false, false
		t.attempt++
		t.pushes++
		if t.pushes == 1 {
			// A new attempt: what the last one failed with is history.
			t.reason, t.message = "", ""
		}
		t.retryAt = 0
		t.notified = now.UnixMilli()
		if c.startTime.IsZero() {
			c.startTime = now
		}
		e.setState(t, otav1.TaskNotified, now)
		out = append(out, outgoing{kind: protocol.KindUpgrade, pk: c.spec.ProductKey, device: t.dev.name,
			has: true, image: c.spec.Image, module: c.spec.Module, version: c.spec.Target, task: t})
		pushed++
	}

	// Tasks queued again first (retries, re-pushes, confirmations): they
	// sit behind the later waves' tasks in no queue, or a wave waiting for
	// its own retries would never end.
	again := c.again[:0]
	for _, t := range c.again {
		switch {
		case t.state != otav1.TaskQueued || t.c != c:
			t.queued = false
		case t.wave > c.currentWave || pushed >= budget:
			again = append(again, t)
		default:
			push(t)
		}
	}
	clear(c.again[len(again):])
	c.again = again
	// Then the selection, in order: waves come one after the other.
	i := 0
	for ; i < len(c.queue) && pushed < budget; i++ {
		t := c.queue[i]
		if t.state != otav1.TaskQueued || t.c != c {
			t.queued = false
			continue
		}
		if t.wave > c.currentWave {
			break
		}
		push(t)
	}
	c.queue = c.queue[i:]
	if pushed > 0 && !e.opts.IgnoreCampaignRate {
		c.limiter.AllowN(now, pushed)
	}
	return out
}

// enqueue makes a newly selected QUEUED task eligible for the next push,
// after the tasks selected before it.
func (c *campaign) enqueue(t *task) {
	if !t.queued {
		t.queued = true
		c.queue = append(c.queue, t)
	}
}

// enqueueAgain makes a task eligible that was queued before: a retry, a
// re-push, a confirmation or a push that failed to publish.
func (c *campaign) enqueueAgain(t *task) {
	if !t.queued {
		t.queued = true
		c.again = append(c.again, t)
	}
}

// pushing reports whether the campaign may push now.
func (e *Engine) pushing(c *campaign, now time.Time) bool {
	return c.hasSpec && c.stage.HasSelected() && !c.spec.Paused && !c.over(now) &&
		!now.Before(c.spec.Start) && c.waveHeld == "" && c.currentWave > 0 && c.windowAt(now).Open
}

// send publishes outside the lock. A push that cannot be sent goes back
// to QUEUED to be tried again on a later tick.
func (e *Engine) send(msgs []outgoing) {
	if failed := e.sender.send(msgs); len(failed) > 0 {
		e.requeue(failed)
	}
}

// requeue puts tasks whose push failed back in their queues.
func (e *Engine) requeue(ts []*task) {
	e.mu.Lock()
	defer e.unlock()
	now := e.now()
	for _, t := range ts {
		if t.state != otav1.TaskNotified {
			continue
		}
		t.attempt--
		e.setState(t, otav1.TaskQueued, now)
		t.c.enqueueAgain(t)
		e.stats.PublishFailed++
	}
}
