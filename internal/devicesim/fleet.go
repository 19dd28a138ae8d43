package devicesim

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/otafleet/otafleet/internal/mqttclient"
)

// Fleet is a running simulated fleet. Create it with Start.
type Fleet struct {
	cfg     Config
	ctx     context.Context
	cancel  context.CancelFunc
	devices []*device
	byName  map[string]*device
	conns   []*conn
	wg      sync.WaitGroup // device goroutines
	life    sync.Mutex     // orders wg.Add against the wg.Wait of shutdown
	stopped chan struct{}

	mu      sync.Mutex
	st      state
	changed chan struct{} // made by Wait, closed by the next change
	waiting atomic.Bool   // changed is open: a change must close it

	count struct {
		pushes, replies, ignored, invalid, downloads, bytes, published, publishErrors atomic.Int64
	}
	cutOnce atomic.Bool // a 4.x download had its connection cut (once per fleet)
}

// state holds the fleet-wide tallies that Summary reports, kept current on
// every device change so that Summary and Wait cost O(versions), not O(N).
type state struct {
	informed   int
	connsUp    int
	outcomes   map[Outcome]int
	versions   []map[string]int // by module index
	violations map[Violation]int64
}

// Start creates the devices, connects them and returns once every
// connection is subscribed, so no push can be missed. Devices then inform
// their versions in the background: WaitInformed waits for that. The fleet
// runs until ctx ends or Stop is called.
func Start(ctx context.Context, cfg Config) (*Fleet, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("devicesim: %w", err)
	}
	f := &Fleet{cfg: cfg, byName: make(map[string]*device, cfg.Devices), stopped: make(chan struct{})}
	f.ctx, f.cancel = context.WithCancel(ctx)
	f.st.outcomes = map[Outcome]int{OutcomeIdle: cfg.Devices}
	f.st.violations = map[Violation]int64{}
	for _, m := range cfg.Modules {
		f.st.versions = append(f.st.versions, map[string]int{m.Version: cfg.Devices})
	}
	for i := range cfg.Connections {
		// The name prefix too: two fleets of one product (devices that come
		// later) must not take each other's connections over.
		id := fmt.Sprintf("%smux-%s-%s%d", cfg.ClientIDPrefix, cfg.ProductKey, cfg.NamePrefix, i)
		if cfg.Mode == PerDevice {
			id = cfg.ClientIDPrefix + cfg.ProductKey + "." + cfg.deviceName(i)
		}
		username := cfg.Username
		if cfg.Profile == ProfileSDK4 {
			username = cfg.deviceName(i) + "&" + cfg.ProductKey // how the broker knows which device it is
		}
		c, err := newConn(f, id, username)
		if err != nil {
			f.cancel()
			return nil, fmt.Errorf("devicesim: %w", err)
		}
		f.conns = append(f.conns, c)
	}
	for i := range cfg.Devices {
		// The field SDKs send numeric ids; half the lenient fleet does.
		d := &device{f: f, name: cfg.deviceName(i), numericID: i%2 == 0 || cfg.Profile.strict(), outcome: OutcomeIdle,
			conn: f.conns[i%len(f.conns)]}
		for _, m := range cfg.Modules {
			d.versions = append(d.versions, m.Version)
		}
		f.devices = append(f.devices, d)
		f.byName[d.name] = d
		d.conn.devices[d.name] = d
	}
	go func() { <-f.ctx.Done(); f.shutdown() }()
	if err := f.connectAll(); err != nil {
		f.Stop()
		return nil, fmt.Errorf("devicesim: %w", err)
	}
	return f, nil
}

// connectAll connects every connection, a bounded number at a time.
func (f *Fleet) connectAll() error {
	sem := make(chan struct{}, f.cfg.ConnectConcurrency)
	errs := make(chan error, len(f.conns))
	var wg sync.WaitGroup
	for _, c := range f.conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs <- c.connect(f.ctx)
		}()
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		if err != nil {
			all = append(all, err)
		}
	}
	if len(all) > 3 {
		all = append(all[:3], fmt.Errorf("and %d more", len(all)-3))
	}
	return errors.Join(all...)
}

// Stop disconnects every device and waits for their goroutines. It is safe
// to call more than once, and after ctx ended.
func (f *Fleet) Stop() {
	f.cancel()
	<-f.stopped
}

func (f *Fleet) shutdown() {
	defer close(f.stopped)
	// A barrier, not a critical section: once it is passed, goroutine sees
	// the cancelled context and adds nothing to wg.
	f.life.Lock()
	f.life.Unlock() //nolint:staticcheck // SA2001: the empty section is the point
	f.wg.Wait()
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for _, c := range f.conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c.client.Disconnect()
		}()
	}
	wg.Wait()
}

// goroutine runs fn on a tracked goroutine that Stop waits for.
func (f *Fleet) goroutine(fn func(ctx context.Context)) {
	f.life.Lock()
	defer f.life.Unlock()
	if f.ctx.Err() != nil {
		return
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		fn(f.ctx)
	}()
}

// waitToken waits for a publish's PUBACK (or the fleet stopping) and counts
// the result.
func (f *Fleet) waitToken(tok mqttclient.Token) error {
	if err := tok.Wait(f.ctx); err != nil {
		f.add(&f.count.publishErrors, 1)
		return err
	}
	f.add(&f.count.published, 1)
	return nil
}

// update changes the tallies and wakes Wait.
func (f *Fleet) update(fn func(*state)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.st)
	f.wakeLocked()
}

// add bumps a counter and wakes Wait, whose condition may be on counters.
// Without a Wait it takes no lock: counters change on every message.
func (f *Fleet) add(c *atomic.Int64, n int64) {
	c.Add(n)
	if f.waiting.Load() { // after the Add: a Wait that missed it is woken
		f.mu.Lock()
		f.wakeLocked()
		f.mu.Unlock()
	}
}

// wakeLocked wakes every Wait; the caller holds mu.
func (f *Fleet) wakeLocked() {
	if f.changed != nil {
		close(f.changed)
		f.changed = nil
		f.waiting.Store(false)
	}
}

// Wait blocks until cond holds for the fleet's summary or ctx ends. cond is
// evaluated after every change, so it should be cheap.
func (f *Fleet) Wait(ctx context.Context, cond func(Summary) bool) error {
	for {
		f.mu.Lock()
		if f.changed == nil {
			f.changed = make(chan struct{})
			f.waiting.Store(true)
		}
		ch := f.changed
		f.mu.Unlock()
		s := f.Summary()
		if cond(s) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("devicesim: %w; fleet: %s", ctx.Err(), s.Line())
		}
	}
}

// WaitInformed blocks until every device has informed all its modules at
// least once (their PUBACKs received).
func (f *Fleet) WaitInformed(ctx context.Context) error {
	return f.Wait(ctx, func(s Summary) bool { return s.Informed == s.Devices })
}

// DeviceNames returns the names of all devices, in index order.
func (f *Fleet) DeviceNames() []string {
	out := make([]string, len(f.devices))
	for i, d := range f.devices {
		out[i] = d.name
	}
	return out
}

// Plan returns what the named device will do with its first upgrade
// attempt (every attempt, unless Failures.Transient).
func (f *Fleet) Plan(name string) Plan { return f.cfg.plan(name, 0) }

// PlanAt returns what the named device will do with its attempt number
// attempt, counted from 0: with Failures.Transient a retry draws anew.
func (f *Fleet) PlanAt(name string, attempt int) Plan { return f.cfg.plan(name, attempt) }

// DeviceStatus is one device's state.
type DeviceStatus struct {
	Name     string            `json:"name"`
	Versions map[string]string `json:"versions"` // module → version
	Outcome  Outcome           `json:"outcome"`
	Attempts int               `json:"attempts"`
	Offline  bool              `json:"offline"`
	Informed bool              `json:"informed"`
	// History lists the device's upgrade attempts, oldest first.
	History []Attempt `json:"history,omitempty"`
}

// Device returns the named device's state.
func (f *Fleet) Device(name string) (DeviceStatus, bool) {
	d, ok := f.byName[name]
	if !ok {
		return DeviceStatus{}, false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s := DeviceStatus{Name: name, Versions: map[string]string{}, Outcome: d.outcome, Attempts: d.attempts,
		Offline: d.offline, Informed: d.informed, History: slices.Clone(d.history)}
	for i, m := range f.cfg.Modules {
		s.Versions[m.Name] = d.versions[i]
	}
	return s, true
}

// Summary returns the fleet's tallies.
func (f *Fleet) Summary() Summary {
	s := Summary{
		Devices: len(f.devices), Connections: len(f.conns),
		PushesReceived: f.count.pushes.Load(), RepliesReceived: f.count.replies.Load(),
		PushesIgnored: f.count.ignored.Load(), InvalidReceived: f.count.invalid.Load(),
		Downloads: f.count.downloads.Load(), DownloadedBytes: f.count.bytes.Load(),
		Published: f.count.published.Load(), PublishErrors: f.count.publishErrors.Load(),
		Outcomes: map[Outcome]int{}, Versions: map[string]map[string]int{}, Violations: map[Violation]int64{},
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, n := range f.st.violations {
		s.Violations[k] = n
		s.ContractViolations += n
	}
	s.Informed = f.st.informed
	s.ConnectionsUp = f.st.connsUp
	for o, n := range f.st.outcomes {
		if n != 0 {
			s.Outcomes[o] = n
		}
	}
	for i, m := range f.cfg.Modules {
		vs := map[string]int{}
		for v, n := range f.st.versions[i] {
			if n != 0 {
				vs[v] = n
			}
		}
		s.Versions[m.Name] = vs
	}
	return s
}

// sortedKeys returns a map's keys in order, for stable output.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
