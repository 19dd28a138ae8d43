package fleet

import (
	"context"
	"math"
	"slices"
	"time"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/rollout"
)

// statusInterval is the least time between two status events of one
// campaign: status follows devices within about twice this.
const statusInterval = 500 * time.Millisecond

// scanInterval is how often a campaign's tasks are walked for timeouts,
// due retries and wave statistics: a walk is O(tasks), so not every tick.
const scanInterval = time.Second

// Start rebuilds the state from the slices, then runs the push and flush
// loops until ctx ends. It is a manager Runnable that needs leadership.
func (e *Engine) Start(ctx context.Context) error {
	defer close(e.stopped)
	start := time.Now()
	if err := e.rebuild(ctx); err != nil {
		return err
	}
	e.mu.Lock()
	e.ready = true
	devices, campaigns := e.sizes()
	e.unlock()
	close(e.readyCh)
	e.log.Info("Fleet state rebuilt", "devices", devices, "campaigns", campaigns, "took", time.Since(start).Round(time.Millisecond).String())

	flushDone := make(chan struct{})
	go func() {
		defer close(flushDone)
		e.flushLoop(ctx)
	}()
	stopSending, sendDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sendDone)
		defer close(e.sendStopped)
		e.sendLoop(stopSending)
	}()

	ticker := time.NewTicker(e.opts.TickInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			// Write what is pending before leadership is given up, after
			// the last tick: that releases the pushes waiting for their
			// NOTIFIED state, which the sender then publishes. A publish
			// that fails puts its task back to QUEUED, which the second
			// flush writes, so that the next leader pushes it.
			<-flushDone
			final, cancel := context.WithTimeout(context.Background(), writeTimeout)
			defer cancel()
			e.flush(final)
			close(stopSending)
			<-sendDone
			e.flush(final)
			return nil
		case <-ticker.C:
		case <-e.wake:
		}
		e.tick()
	}
}

// sendLoop publishes what the loop and the device handler queue. The outbox
// is never closed (HandleBatch may still queue replies while the engine
// stops); on stop the loop sends what is queued and returns.
func (e *Engine) sendLoop(stop <-chan struct{}) {
	for {
		select {
		case batch := <-e.outbox:
			e.send(batch)
		case <-stop:
			for {
				select {
				case batch := <-e.outbox:
					e.send(batch)
				default:
					return
				}
			}
		}
	}
}

func (e *Engine) sizes() (devices, campaigns int) {
	for _, pr := range e.products {
		devices += len(pr.devices)
	}
	return devices, len(e.campaigns)
}

// tick selects, expires, advances waves and pushes, then sends the pushes
// outside the lock.
func (e *Engine) tick() {
	e.mu.Lock()
	marks := e.durable.marks
	now := e.now()
	var out []outgoing
	for _, c := range e.campaigns {
		if !c.hasSpec {
			continue
		}
		e.selectNow(c, now)
		if len(c.spec.Windows) > 0 {
			c.windowAt(now) // a window opening or closing changes status
		}
		// Nothing active, nothing to time out, retry or count: a finished
		// campaign costs no walk. A walk under way goes on.
		if c.walk.next > 0 || (now.Sub(c.lastScan) >= scanInterval && c.active() > 0) {
			e.scan(c, now, maxScanPerTick)
		}
		e.advance(c, now)
		out = e.collectPushes(c, now, out)
		if c.statusDirty && now.Sub(c.lastStatusTrigger) >= statusInterval {
			c.statusDirty = false
			c.lastStatusTrigger = now
			e.campaignChanged(c)
		}
	}
	e.stats.Pushed += int64(len(out))
	seq := e.durable.take(marks)
	e.unlock()
	if len(out) >= maxPushesPerTick {
		e.kick() // more may be due: the next tick comes at once
	}
	// A push goes out once its NOTIFIED state is written: a device is never
	// told to upgrade by a push a crash could forget (and push again).
	if out = e.durable.hold(seq, out); len(out) > 0 {
		// Publishing waits for PUBACKs; the sender does it so that the
		// loop goes on with timeouts, waves and status meanwhile.
		e.outbox <- out
	}
}

// maxScanPerTick bounds the tasks one tick walks in a static campaign, and
// so how long the walk holds the lock: a million tasks walked at once held
// it most of a second, every second. At 50,000 a tick (every 50 ms) a walk
// of a million tasks still takes about a second.
const maxScanPerTick = 50000

// scanWalk is a walk of a campaign's tasks, slice by slice, that may take
// several ticks.
type scanWalk struct {
	next  int                // the next UpgradeSlice; 0 when no walk is under way
	stats []rollout.WaveStat // each wave's counts so far
}

// scan walks a campaign's tasks, budget at a time for a static campaign
// (a dynamic one in one go: a device it selects again meanwhile could be
// counted finished while its new task runs). It times out devices,
// re-queues due retries and counts each wave's tasks; the counts replace
// waveStats once the walk is complete. A count taken early in a walk can
// only hold a wave back longer (a static campaign's finished task does not
// become active again), never let it go early.
func (e *Engine) scan(c *campaign, now time.Time, budget int) {
	if c.spec.Dynamic {
		budget = math.MaxInt
	}
	nw := max(len(c.spec.Waves), 1)
	w := &c.walk
	if w.next == 0 {
		c.lastScan = now
		w.stats = slices.Grow(w.stats[:0], nw)[:nw]
		clear(w.stats)
	}
	nowMs := now.UnixMilli()
	for ; w.next < len(c.slices) && budget > 0; w.next++ {
		tasks := c.slices[w.next].tasks
		for _, t := range tasks {
			e.scanTask(c, t, now, nowMs)
			countWave(&w.stats[min(max(int(t.wave), 1), nw)-1], t, c.spec.Soak)
		}
		budget -= len(tasks)
	}
	if w.next < len(c.slices) {
		return
	}
	w.next = 0
	c.waveStats, w.stats = w.stats, c.waveStats
	c.scanned = true
}

// scanTask applies to one task what time alone decides: a soak over, a
// timeout, a retry due, a push unanswered.
func (e *Engine) scanTask(c *campaign, t *task, now time.Time, nowMs int64) {
	switch {
	case rollout.SoakOver(t.state, t.soakStart, c.spec.Soak, nowMs):
		e.finish(t, otav1.TaskSucceeded, "", "", now)
		e.stats.Succeeded++
		// The device is free now, and will not report again until it
		// reconnects: a campaign of another module that found it busy
		// takes it at once (the multi-module scenario, with a soak).
		if e.hasDynamic(c.product) {
			e.offer(c.product, t.dev, "", true, now)
		}
	case rollout.TimedOut(t.state, t.started, c.spec.Timeout, nowMs):
		e.fail(t, otav1.TaskTimedOut, otav1.FailureTimeout, "no new version within "+c.spec.Timeout.String(), now)
	case !t.queued && rollout.RetryDue(t.state, t.retryAt, nowMs):
		c.enqueueAgain(t)
	case t.state == otav1.TaskNotified:
		e.unanswered(t, false, now)
	}
}

// countWave counts a task in its wave's stats.
func countWave(ws *rollout.WaveStat, t *task, soak time.Duration) {
	switch {
	case t.state == otav1.TaskSoaking:
		ws.Soaking++
		if end := time.UnixMilli(t.soakStart + soak.Milliseconds()); end.After(ws.SoakEnds) {
			ws.SoakEnds = end
		}
	case t.state.Active():
		ws.Active++
	case t.state == otav1.TaskSucceeded:
		ws.Succeeded++
		ws.Finished++
	default:
		ws.Finished++
	}
}

// advance moves a campaign along: it applies the schedule's end and the
// abort policy, and starts the next wave when the current one is done.
func (e *Engine) advance(c *campaign, now time.Time) {
	// A released batch is over and has dropped its tasks and wave counts.
	if !c.stage.HasSelected() || c.stage == rollout.Released || now.Before(c.spec.Start) {
		return
	}
	if !c.spec.End.IsZero() && !now.Before(c.spec.End) && !c.endApplied {
		c.endApplied = true
		e.cancelNotStarted(c, rollout.ReasonScheduleEnded, "the schedule ended", now)
	}
	if c.aborted == "" {
		if msg := rollout.AbortReason(c.counts, c.spec.Abort); msg != "" {
			c.aborted = msg
			e.cancelNotStarted(c, rollout.ReasonAborted, msg, now)
			c.statusDirty = true
		}
	}
	if c.currentWave == 0 {
		c.currentWave = 1
		c.statusDirty = true
	}
	waves := c.spec.Waves
	if !c.scanned || int(c.currentWave) >= len(waves) {
		c.waveHeld, c.waveGate = "", ""
		return
	}
	w := c.currentWave
	st := c.waveStats[w-1]
	gate := rollout.WaveGate(w, waves[w-1], st, c.spec.PromotedWaves >= w, c.pausedUntil, now)
	c.pausedUntil = gate.PausedUntil
	if gate.Held != c.waveHeld {
		c.waveHeld, c.waveGate, c.heldWave = gate.Held, gate.By, w
		c.statusDirty = true
	}
	if gate.Held == "" && st.Active == 0 {
		c.currentWave++
		c.pausedUntil = time.Time{}
		c.statusDirty = true
		// The next wave's counts come with the next walk, begun after this.
		c.scanned, c.walk.next = false, 0
	}
}

// cancelNotStarted cancels the tasks that were not pushed yet.
func (e *Engine) cancelNotStarted(c *campaign, reason, msg string, now time.Time) {
	for _, t := range c.tasks {
		if t.state == otav1.TaskConfirm || t.state == otav1.TaskQueued {
			e.finish(t, otav1.TaskCanceled, reason, msg, now)
		}
	}
}

// applyCancel cancels the tasks in the states a cancel asked for.
func (e *Engine) applyCancel(c *campaign, now time.Time) {
	if !c.spec.Cancel || c.cancelApplied {
		return
	}
	c.cancelApplied = true
	states := c.spec.CancelStates
	if len(states) == 0 {
		states = []otav1.TaskState{otav1.TaskConfirm, otav1.TaskQueued, otav1.TaskNotified, otav1.TaskInProgress}
	}
	want := map[otav1.TaskState]bool{}
	for _, s := range states {
		want[s] = true
	}
	for _, t := range c.tasks {
		if want[t.state] {
			e.finish(t, otav1.TaskCanceled, rollout.ReasonCanceled, "canceled by the campaign", now)
		}
	}
	c.statusDirty = true
}
