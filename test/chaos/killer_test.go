package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Kills come at a random delay in [minGap, maxGap) after the previous
// manager took work, while a rollout runs.
const (
	minGap = 200 * time.Millisecond
	maxGap = 6 * time.Second
)

// kill is one SIGKILL of the leading manager.
type kill struct {
	round     int
	at        time.Time
	recover   time.Duration // from the SIGKILL to the next leader taking work
	firstPush time.Duration // from the SIGKILL to the next leader's first push; 0 if none within a minute
}

// killer SIGKILLs the leading manager at seeded random instants while a
// rollout runs, restarts it at once, and measures how long the next leader
// takes to take work (the lease of the killed leader has to expire first)
// and to push.
type killer struct {
	r       *rig
	rng     *rand.Rand
	want    int
	devices int
	round   atomic.Int32 // the running rollout; 0 between rollouts
	done    chan struct{}
	pushes  sync.WaitGroup // first-push measurements

	mu     sync.Mutex
	kills  []kill
	leader int
	lastUp time.Time
	err    error
}

func newKiller(r *rig, seed int64, want, devices int) *killer {
	leader, up, _ := r.waitLeader(context.Background(), 0, time.Second) // startRig waited for it
	return &killer{r: r, rng: rand.New(rand.NewPCG(uint64(seed), 0x5eed)), want: want, devices: devices,
		done: make(chan struct{}), leader: leader, lastUp: up}
}

// run kills until it has killed want times or ctx ends. The rig's manager
// belongs to run until done is closed.
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
		if err := k.killOnce(ctx, round); err != nil {
			k.mu.Lock()
			k.err = err
			k.mu.Unlock()
			return
		}
	}
}

func (k *killer) killOnce(ctx context.Context, round int) error {
	at := time.Now()
	if err := k.r.managers[k.leader].kill(); err != nil {
		return err
	}
	if err := k.r.startManager(k.leader); err != nil {
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
	n, p := len(k.kills)-1, k.r.managers[leader]
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

// finished: every kill done, or the killer failed.
func (k *killer) finished() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.kills) >= k.want || k.err != nil
}

// since is when the last manager took work (the start, before any kill).
func (k *killer) since() time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lastUp
}

// result returns the kills and the killer's error; call it after done.
func (k *killer) result() ([]kill, error) {
	k.pushes.Wait()
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]kill(nil), k.kills...), k.err
}

// sleep waits d unless ctx ends first: the chaos schedule, not a
// synchronization.
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
