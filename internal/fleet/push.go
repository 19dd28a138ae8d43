package fleet

import (
	"context"
	"fmt"
	"sync"
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

// collectPushes pops the tasks a running campaign may push now, marks them
// NOTIFIED and returns them as outgoing pushes.
func (e *Engine) collectPushes(c *campaign, now time.Time, out []outgoing) []outgoing {
	if !e.pushing(c, now) || len(c.queue) == 0 {
		return out
	}
	budget := len(c.queue)
	if !e.opts.IgnoreCampaignRate {
		budget = min(budget, int(c.limiter.TokensAt(now)))
	}
	budget = e.push.take(now, budget)
	pushed, i := 0, 0
	for ; i < len(c.queue) && pushed < budget; i++ {
		t := c.queue[i]
		if t.state != otav1.TaskQueued || t.c != c {
			t.queued = false
			continue
		}
		if t.wave > c.currentWave {
			break
		}
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
	c.queue = c.queue[i:]
	if pushed > 0 && !e.opts.IgnoreCampaignRate {
		c.limiter.AllowN(now, pushed)
	}
	return out
}

// enqueue makes a QUEUED task eligible for the next push.
func (c *campaign) enqueue(t *task) {
	if !t.queued {
		t.queued = true
		c.queue = append(c.queue, t)
	}
}

// pushing reports whether the campaign may push now.
func (e *Engine) pushing(c *campaign, now time.Time) bool {
	return c.hasSpec && c.stage.HasSelected() && !c.spec.Paused && !c.over(now) &&
		!now.Before(c.spec.Start) && c.waveHeld == "" && c.currentWave > 0
}

// send signs URLs and publishes outside the lock. A push that cannot be
// sent goes back to QUEUED to be tried again on a later tick.
func (e *Engine) send(msgs []outgoing) {
	var failed []*task
	var errs int
	var lastErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan *outgoing)
	for range min(len(msgs), sendWorkers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range work {
				ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
				err := e.sendOne(ctx, o)
				cancel()
				if err != nil {
					mu.Lock()
					errs, lastErr = errs+1, err
					if o.task != nil {
						failed = append(failed, o.task)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range msgs {
		work <- &msgs[i]
	}
	close(work)
	wg.Wait()
	if errs > 0 {
		// One line per batch, not per device: a broker outage fails them all.
		e.log.Info("Sending to devices failed; pushes are retried", "failed", errs, "of", len(msgs), "lastError", lastErr.Error())
	}
	if len(failed) > 0 {
		e.requeue(failed)
	}
}

func (e *Engine) sendOne(ctx context.Context, o *outgoing) error {
	var up *protocol.Upgrade
	if o.has {
		url, err := e.signer.PresignGet(ctx, o.image.Bucket, o.image.Key)
		if err != nil {
			return err
		}
		if !e.opts.LongURLs {
			// Never send a URL that would crash a device in the field.
			if err := protocol.CheckDeviceURL(url); err != nil {
				return fmt.Errorf("refusing to send a download URL devices cannot take: %w", err)
			}
		}
		up = upgradeMessage(o, url)
	}
	switch o.kind {
	case protocol.KindUpgrade:
		return e.pub.PublishUpgrade(ctx, o.pk, o.device, *up)
	case protocol.KindFirmwareGet:
		return e.pub.PublishGetReply(ctx, o.pk, o.device, o.id, up)
	default:
		return e.pub.PublishRequestReply(ctx, o.pk, o.device, up)
	}
}

func upgradeMessage(o *outgoing, url string) *protocol.Upgrade {
	img := o.image
	u := &protocol.Upgrade{
		Version: o.version, URL: url, Size: img.Size, MD5: img.MD5,
		SignMethod: protocol.SignMD5, Sign: img.MD5, Diff: img.Diff, ExtData: img.ExtData,
	}
	if img.SignMethod == otav1.SignMethodSHA256 {
		u.SignMethod, u.Sign = protocol.SignSHA256, img.SHA256
	}
	if o.module != otav1.DefaultModule {
		u.Module = o.module
	}
	return u
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
		t.c.enqueue(t)
		e.stats.PublishFailed++
	}
}
