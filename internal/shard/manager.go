package shard

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/otafleet/otafleet/internal/fleet"
)

// Config says where the Leases live and how a product's shard is built.
type Config struct {
	Namespace string
	// Identity names this process in the Leases, unique per process: a
	// restarted replica must not take its former self's Leases for its
	// own. Default: $POD_NAME (or the host name) and a random suffix.
	Identity string
	// LeaseDuration is how long a Lease stays held without a renewal; a
	// killed replica's products move after it. Default 15 s.
	LeaseDuration time.Duration
	// RetryPeriod is the time between two rounds: the delay before a
	// released product is taken again. Default 2 s.
	RetryPeriod time.Duration
	Client      client.Client
	// Reader reads Leases from the API server (not a cache).
	Reader client.Reader
	// Keys lists the productKeys of every Product.
	Keys func(ctx context.Context) ([]string, error)
	// Build makes a product's shard; it runs once the Lease is held.
	Build func(productKey string) (Shard, error)
	// Retire, when set, hears of each engine that stopped (metrics keep
	// its counters).
	Retire func(*fleet.Engine)
	// AppAPIURL, when set, is where the other replicas forward app API
	// requests for this replica's products.
	AppAPIURL string
	Log       logr.Logger
}

// Shard is what runs for one owned product.
type Shard struct {
	Engine *fleet.Engine
	// Run runs the engine and the product's MQTT gateway until ctx ends,
	// and returns once both stopped (the engine wrote what is pending).
	Run func(ctx context.Context) error
}

// Manager owns products by Lease and runs their shards. It is a manager
// Runnable that runs on every replica.
type Manager struct {
	cfg    Config
	router *Router
	ls     *leases
	member *coordinationv1.Lease
	held   map[string]*owned
	// crashed ends the loop as a SIGKILL would (tests only).
	crashed atomic.Bool
}

type owned struct {
	lease   *coordinationv1.Lease
	renewed time.Time
	cancel  context.CancelFunc
	done    chan struct{}
	// stopping: canceled, still writing what is pending; its Lease is
	// renewed until it is done, then released if release, or deleted if
	// forget (the Product is gone).
	stopping, release, forget bool
}

// NewManager returns a manager that registers the engines it runs with
// router.
func NewManager(cfg Config, router *Router) (*Manager, error) {
	if cfg.Namespace == "" || cfg.Client == nil || cfg.Reader == nil || cfg.Keys == nil || cfg.Build == nil {
		return nil, errors.New("shard: namespace, clients, Keys and Build are required")
	}
	if cfg.Identity == "" {
		name := os.Getenv("POD_NAME") // the downward API's metadata.name
		if name == "" {
			name, _ = os.Hostname()
		}
		cfg.Identity = name + "-" + utilrand.String(5)
	}
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration = 15 * time.Second
	}
	if cfg.RetryPeriod == 0 {
		cfg.RetryPeriod = 2 * time.Second
	}
	if cfg.RetryPeriod*3 > cfg.LeaseDuration {
		return nil, fmt.Errorf("shard: the lease duration (%s) must be at least three retry periods (%s)", cfg.LeaseDuration, cfg.RetryPeriod)
	}
	ls := &leases{c: cfg.Client, r: cfg.Reader, ns: cfg.Namespace, self: cfg.Identity, duration: cfg.LeaseDuration,
		now: time.Now, seen: map[string]observed{}}
	return &Manager{cfg: cfg, router: router, ls: ls, held: map[string]*owned{}}, nil
}

// NeedLeaderElection: every replica owns products.
func (m *Manager) NeedLeaderElection() bool { return false }

// Start runs rounds until ctx ends, then stops every shard (each writes
// what is pending) and only then releases their Leases.
func (m *Manager) Start(ctx context.Context) error {
	log := m.cfg.Log.WithValues("identity", m.cfg.Identity)
	log.Info("Owning products by Lease", "namespace", m.cfg.Namespace, "leaseDuration", m.cfg.LeaseDuration)
	t := time.NewTicker(m.cfg.RetryPeriod)
	defer t.Stop()
	for {
		if err := m.round(ctx, log); err != nil && ctx.Err() == nil {
			log.Error(err, "Product ownership round failed; retrying")
		}
		select {
		case <-ctx.Done():
			m.stopAll(log)
			return nil
		case <-t.C:
		}
		if m.crashed.Load() {
			for _, o := range m.held {
				o.cancel()
			}
			return nil
		}
	}
}

// round renews what this replica holds, then takes or hands over products
// as Decide says.
func (m *Manager) round(ctx context.Context, log logr.Logger) error {
	m.reap(ctx, log)
	// Product Leases first: a replica that cannot renew them must stop
	// their shards in time, whatever happens to its member Lease.
	m.renewHeld(ctx, log)
	if err := m.renewMember(ctx); err != nil {
		return fmt.Errorf("member lease: %w", err)
	}
	v, err := m.view(ctx)
	if err != nil {
		return err
	}
	p := Decide(v)
	for _, k := range p.Release {
		log.Info("Handing a product over", "productKey", k, "holding", len(m.held))
		m.stop(k, true)
		if o := m.held[k]; o != nil && !slices.Contains(v.Keys, k) {
			o.forget = true
		}
	}
	for _, k := range p.Acquire {
		if err := m.take(ctx, k, log); err != nil {
			return fmt.Errorf("taking product %s: %w", k, err)
		}
	}
	return nil
}

func (m *Manager) renewMember(ctx context.Context) error {
	if m.member == nil {
		var annotations map[string]string
		if m.cfg.AppAPIURL != "" {
			annotations = map[string]string{AnnotationAppAPI: m.cfg.AppAPIURL}
		}
		l, err := m.ls.acquire(ctx, MemberLeaseName(m.cfg.Identity), leaseMember, annotations)
		if err != nil || l == nil {
			return err
		}
		m.member = l
		return nil
	}
	lost, err := m.ls.renew(ctx, m.member)
	if lost || err != nil {
		m.member = nil
	}
	return err
}

// reap forgets the shards that ended, releasing their Leases when they
// were handed over or ended by themselves (an engine that failed to
// rebuild: the product is taken again later).
func (m *Manager) reap(ctx context.Context, log logr.Logger) {
	for k, o := range m.held {
		select {
		case <-o.done:
		default:
			continue
		}
		if !o.stopping {
			log.Info("A product's shard stopped by itself; releasing it", "productKey", k)
			o.release = true
		}
		switch {
		case o.forget:
			if err := m.cfg.Client.Delete(ctx, o.lease); client.IgnoreNotFound(err) != nil {
				log.Error(err, "Deleting the Lease of a deleted product", "productKey", k)
			}
		case o.release:
			if err := m.ls.release(ctx, o.lease); err != nil {
				log.Error(err, "Releasing a product's Lease", "productKey", k)
			}
		}
		delete(m.held, k)
	}
}

// renewHeld renews the product Leases due for it, of running shards and of
// stopping ones (they still write). A shard stops when its Lease was
// taken, or could not be renewed for two thirds of its duration (before
// another replica may take it).
func (m *Manager) renewHeld(ctx context.Context, log logr.Logger) {
	now := time.Now()
	for k, o := range m.held {
		if now.Sub(o.renewed) < m.cfg.LeaseDuration/3 {
			continue
		}
		lost, err := m.ls.renew(ctx, o.lease)
		switch {
		case err == nil && !lost:
			o.renewed = now
		case lost:
			log.Info("Another replica took a product over", "productKey", k)
			m.stop(k, false)
		case now.Sub(o.renewed) > m.cfg.LeaseDuration*2/3:
			log.Error(err, "Could not renew a product's Lease; stopping its shard", "productKey", k)
			m.stop(k, false)
		}
	}
}

// view reads the live members, the products and their live holders.
func (m *Manager) view(ctx context.Context) (View, error) {
	v := View{Self: m.cfg.Identity, Holders: map[string]string{}}
	members, err := m.ls.list(ctx, leaseMember)
	if err != nil {
		return v, err
	}
	apps := map[string]string{}
	for i := range members {
		if id := ptr.Deref(members[i].Spec.HolderIdentity, ""); m.ls.live(&members[i]) {
			v.Members = append(v.Members, id)
			apps[id] = members[i].Annotations[AnnotationAppAPI]
		}
	}
	products, err := m.ls.list(ctx, leaseProduct)
	if err != nil {
		return v, err
	}
	for i := range products {
		l := &products[i]
		if k := l.Annotations[AnnotationProductKey]; k != "" && m.ls.live(l) {
			v.Holders[k] = ptr.Deref(l.Spec.HolderIdentity, "")
		}
	}
	m.ls.forgetExcept(members, products)
	owners := map[string]string{}
	for k, id := range v.Holders {
		if u := apps[id]; u != "" && id != m.cfg.Identity {
			owners[k] = u
		}
	}
	m.router.setOwners(owners)
	for k, o := range m.held {
		v.Holders[k] = m.cfg.Identity
		if o.stopping {
			v.Holders[k] = "(stopping)" // neither free nor to hand over again
		}
	}
	v.Keys, err = m.cfg.Keys(ctx)
	return v, err
}

// take acquires a product's Lease and starts its shard.
func (m *Manager) take(ctx context.Context, key string, log logr.Logger) error {
	l, err := m.ls.acquire(ctx, ProductLeaseName(key), leaseProduct, map[string]string{AnnotationProductKey: key})
	if err != nil || l == nil {
		return err // nil, nil: another replica was faster
	}
	sh, err := m.cfg.Build(key)
	if err != nil {
		_ = m.ls.release(ctx, l)
		return err
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	o := &owned{lease: l, renewed: time.Now(), cancel: cancel, done: make(chan struct{})}
	m.held[key] = o
	m.router.add(key, sh.Engine)
	log.Info("Took a product over", "productKey", key, "holding", len(m.held))
	go func() {
		defer close(o.done)
		if err := sh.Run(sctx); err != nil {
			log.Error(err, "A product's shard failed", "productKey", key)
		}
		m.router.remove(key)
		if m.cfg.Retire != nil {
			m.cfg.Retire(sh.Engine)
		}
	}()
	go func() {
		select {
		case <-sh.Engine.Rebuilt():
			m.router.ready(key)
		case <-o.done:
		}
	}()
	return nil
}

// stop stops a product's shard; once it wrote what is pending (reap), its
// Lease is released if release, so that another replica takes the product
// at once. The rounds go on meanwhile: the other Leases stay renewed.
func (m *Manager) stop(key string, release bool) {
	o := m.held[key]
	if o == nil || o.stopping {
		return
	}
	o.stopping, o.release = true, release
	o.cancel()
}

// stopAll stops every shard at once, then releases every Lease and the
// member Lease: a graceful stop hands every product over at once.
func (m *Manager) stopAll(log logr.Logger) {
	var wg sync.WaitGroup
	for _, o := range m.held {
		wg.Go(func() { o.cancel(); <-o.done })
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for k, o := range m.held {
		if o.stopping && !o.release {
			continue // lost to another replica
		}
		if err := m.ls.release(ctx, o.lease); err != nil {
			log.Error(err, "Releasing a product's Lease", "productKey", k)
		}
	}
	if m.member != nil {
		_ = m.cfg.Client.Delete(ctx, m.member)
	}
	log.Info("Handed every product over", "products", len(m.held))
	m.held = map[string]*owned{}
}

// crashForTest stops the shards as a SIGKILL would end them: the Leases
// are neither renewed nor released. Tests only.
func (m *Manager) crashForTest() {
	m.crashed.Store(true)
}
