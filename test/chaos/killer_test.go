package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Kills and faults come at a random delay in [minGap, maxGap) after the
// previous manager took work, while a rollout runs.
const (
	minGap = 200 * time.Millisecond
	maxGap = 6 * time.Second
)

// eventKill is a SIGKILL of the leading manager in a killer's plan; every
// other event names a fault of faultTable.
const eventKill = "kill"

// kill is one SIGKILL of the leading manager.
type kill struct {
	round     int
	at        time.Time
	recover   time.Duration // from the SIGKILL to the next leader taking work
	firstPush time.Duration // from the SIGKILL to the next leader's first push; 0 if none within a minute
}

// killer SIGKILLs the leading manager and injects the run's faults at
// seeded random instants while a rollout runs, in a seeded order. After a
// kill it restarts the manager at once and measures how long the next
// leader takes to take work (the lease of the killed leader has to expire
// first) and to push.
type killer struct {
	r       *rig
	rng     *rand.Rand
	plan    []string // events, in order
	devices int
	round   atomic.Int32 // the running rollout; 0 between rollouts
	done    chan struct{}
	pushes  sync.WaitGroup // first-push measurements

	mu     sync.Mutex
	next   int // the next event of plan
	kills  []kill
	faults []faultRun
	leader int
	lastUp time.Time
	err    error
}

// newKiller plans kills manager kills and every rollout fault in faults,
// repeat times each, in a seeded order.
func newKiller(r *rig, cfg config) *killer {
	leader, up, _ := r.waitLeader(context.Background(), 0, time.Second) // startRig waited for it
	k := &killer{r: r, rng: rand.New(rand.NewPCG(uint64(cfg.seed), 0x5eed)), devices: cfg.devices,
		done: make(chan struct{}), leader: leader, lastUp: up}
	for range cfg.kills {
		k.plan = append(k.plan, eventKill)
	}
	for _, name := range cfg.faults {
		if f, _ := faultNamed(name); f.inject != nil && !f.upload {
			for range cfg.repeat {
				k.plan = append(k.plan, name)
			}
		}
	}
	k.rng.Shuffle(len(k.plan), func(i, j int) { k.plan[i], k.plan[j] = k.plan[j], k.plan[i] })
	return k
}

// run works through the plan until it is done or ctx ends. The rig's
// managers and servers belong to run until done is closed.
func (k *killer) run(ctx context.Context) {
	defer close(k.done)
	for !k.finished() {
		gap := minGap + time.Duration(k.rng.Int64N(int64(maxGap-minGap)))
		if !k.waitRollout(ctx) || !sleep(ctx, gap) {
			return
		}
		round := int(k.round.Load())
		if round == 0 {
			continue // the rollout ended meanwhile: draw again for the next
		}
		k.mu.Lock()
		event := k.plan[k.next]
		k.mu.Unlock()
		var err error
		if event == eventKill {
			err = k.killOnce(ctx, round)
		} else {
			err = k.faultOnce(ctx, round, event)
		}
		k.mu.Lock()
		k.next++
		if err != nil {
			k.err = fmt.Errorf("%s in rollout %d: %w", event, round, err)
		}
		k.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (k *killer) killOnce(ctx context.Context, round int) error {
	at := time.Now()
	if err := k.r.replace(k.leader); err != nil {
		return err
	}
	leader, up, err := k.r.waitLeader(ctx, k.devices, 3*time.Minute)
	if err != nil {
		return fmt.Errorf("after kill %d: %w", len(k.kills)+1, err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.kills = append(k.kills, kill{round: round, at: at, recover: up.Sub(at)})
	k.leader, k.lastUp = leader, up
	n, p := len(k.kills)-1, k.r.manager(leader)
	k.pushes.Add(1)
	go func() {
		defer k.pushes.Done()
		if pushed := k.r.firstPush(ctx, leader, p, time.Minute); !pushed.IsZero() {
			k.mu.Lock()
			k.kills[n].firstPush = pushed.Sub(at)
			k.mu.Unlock()
		}
	}()
	return nil
}

// faultOnce injects one fault and waits until the system came back.
func (k *killer) faultOnce(ctx context.Context, round int, name string) error {
	f, _ := faultNamed(name)
	seen := k.r.observe(ctx, round)
	run, err := f.inject(ctx, k.r)
	run.name, run.round = name, round
	leader, up, lerr := k.r.waitLeader(ctx, k.devices, 3*time.Minute)
	run.note = strings.TrimPrefix(run.note+"; "+seen(), "; ")
	k.mu.Lock()
	defer k.mu.Unlock()
	k.faults = append(k.faults, run)
	k.leader, k.lastUp = leader, up
	if err != nil {
		return err
	}
	return lerr
}

// waitRollout waits until a rollout runs.
func (k *killer) waitRollout(ctx context.Context) bool {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for k.round.Load() == 0 {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

// finished: every event done, or the killer failed.
func (k *killer) finished() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.next >= len(k.plan) || k.err != nil
}

// since is when the last manager took work (the start, before any kill).
func (k *killer) since() time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lastUp
}

// result returns the kills, the faults and the killer's error; call it
// after done.
func (k *killer) result() ([]kill, []faultRun, error) {
	k.pushes.Wait()
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]kill(nil), k.kills...), append([]faultRun(nil), k.faults...), k.err
}

// sleep waits d unless ctx ends first: the chaos schedule or an injected
// outage, not a synchronization.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
