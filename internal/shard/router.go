package shard

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/fleet"
)

// Router is the engines of the products this replica owns, behind the
// interface the controllers and the app API use for one engine. What names
// a product goes to its engine; what names only a campaign is asked of
// every local engine (a replica owns a few products). A product owned by
// another replica is not known here: the controllers skip it (Owns), its
// owner reconciles it.
type Router struct {
	mu        sync.RWMutex
	engines   map[string]*fleet.Engine
	notifiers map[*registration]struct{}
	acquired  []func(productKey string)
	// owners maps the products of other replicas to their app API.
	owners map[string]string
	// leader reports whether this replica holds the cluster-wide leader
	// Lease, which decides for campaigns whose product is not known.
	leader func() bool
}

type registration struct {
	n       fleet.Notifier
	tasks   bool
	removes map[*fleet.Engine]func()
}

// NewRouter returns a router without engines; leader reports whether this
// replica is the cluster-wide leader.
func NewRouter(leader func() bool) *Router {
	return &Router{engines: map[string]*fleet.Engine{}, notifiers: map[*registration]struct{}{}, leader: leader}
}

// add makes e the engine of productKey; every notifier hears from it.
func (r *Router) add(productKey string, e *fleet.Engine) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.engines[productKey] = e
	for reg := range r.notifiers {
		reg.removes[e] = e.Notify(reg.n, reg.tasks)
	}
}

// remove forgets productKey's engine once it stopped.
func (r *Router) remove(productKey string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.engines[productKey]
	delete(r.engines, productKey)
	for reg := range r.notifiers {
		delete(reg.removes, e)
	}
}

// ready tells the OnAcquire callbacks that productKey's engine rebuilt its
// state.
func (r *Router) ready(productKey string) {
	r.mu.RLock()
	fs := r.acquired
	r.mu.RUnlock()
	for _, f := range fs {
		f(productKey)
	}
}

// OnAcquire calls f each time an engine of a newly owned product is
// ready: the controllers then reconcile what the last owner left.
func (r *Router) OnAcquire(f func(productKey string)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.acquired = append(r.acquired, f)
}

// Engines returns the engines running now.
func (r *Router) Engines() []*fleet.Engine {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*fleet.Engine, 0, len(r.engines))
	for _, e := range r.engines {
		out = append(out, e)
	}
	return out
}

func (r *Router) engine(productKey string) *fleet.Engine {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.engines[productKey]
}

// Owns reports whether this replica runs productKey's engine. The empty
// key, a campaign whose product is not known, is the leader's.
func (r *Router) Owns(productKey string) bool {
	if productKey == "" {
		return r.leader()
	}
	return r.engine(productKey) != nil
}

// Ready reports whether every local engine rebuilt its state.
func (r *Router) Ready() bool {
	for _, e := range r.Engines() {
		if !e.Ready() {
			return false
		}
	}
	return true
}

// Notify registers n with every engine, present and future.
func (r *Router) Notify(n fleet.Notifier, tasks bool) (remove func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	reg := &registration{n: n, tasks: tasks, removes: map[*fleet.Engine]func(){}}
	for _, e := range r.engines {
		reg.removes[e] = e.Notify(n, tasks)
	}
	r.notifiers[reg] = struct{}{}
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.notifiers, reg)
		for _, rm := range reg.removes {
			rm()
		}
	}
}

// SyncProduct registers p with its key's engine, if this replica owns it.
func (r *Router) SyncProduct(p *otav1.Product) bool {
	if e := r.engine(p.Spec.ProductKey); e != nil {
		return e.SyncProduct(p)
	}
	return false
}

// RemoveProduct forgets a Product in every local engine.
func (r *Router) RemoveProduct(nn types.NamespacedName) {
	for _, e := range r.Engines() {
		e.RemoveProduct(nn)
	}
}

// ProductKeyOf returns the key of a Product registered here.
func (r *Router) ProductKeyOf(nn types.NamespacedName) (string, bool) {
	for _, e := range r.Engines() {
		if pk, ok := e.ProductKeyOf(nn); ok {
			return pk, true
		}
	}
	return "", false
}

// Inventory returns a local product's inventory.
func (r *Router) Inventory(productKey string) (fleet.Inventory, bool) {
	if e := r.engine(productKey); e != nil {
		return e.Inventory(productKey)
	}
	return fleet.Inventory{}, false
}

// Upsert hands a campaign to its product's engine.
func (r *Router) Upsert(s fleet.Spec) (fleet.Status, error) {
	if e := r.engine(s.ProductKey); e != nil {
		return e.Upsert(s)
	}
	return fleet.Status{}, fleet.ErrNotOwned
}

// Current reads a campaign's status from the local engine that has it.
func (r *Router) Current(ns string, ref otav1.CampaignReference, inputs string) (fleet.Status, bool) {
	for _, e := range r.Engines() {
		if st, ok := e.Current(ns, ref, inputs); ok {
			return st, true
		}
	}
	return fleet.Status{}, false
}

// Remove forgets a deleted campaign in every local engine.
func (r *Router) Remove(ns string, ref otav1.CampaignReference) {
	for _, e := range r.Engines() {
		e.Remove(ns, ref)
	}
}

// Hold pauses or cancels a campaign in the local engine that has it.
func (r *Router) Hold(ns string, ref otav1.CampaignReference, cancel bool) (fleet.Status, bool) {
	for _, e := range r.Engines() {
		if st, ok := e.Hold(ns, ref, cancel); ok {
			return st, true
		}
	}
	return fleet.Status{}, false
}

// Confirm, CancelDevice and DeviceTasks serve the app API for the products
// this replica owns.
func (r *Router) Confirm(productKey, device string) error {
	if e := r.engine(productKey); e != nil {
		return e.Confirm(productKey, device)
	}
	return fleet.ErrNotOwned
}

// CancelDevice cancels a device's active task.
func (r *Router) CancelDevice(productKey, device string) error {
	if e := r.engine(productKey); e != nil {
		return e.CancelDevice(productKey, device)
	}
	return fleet.ErrNotOwned
}

// setOwners records which app API serves each product of another replica.
func (r *Router) setOwners(owners map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.owners = owners
}

// OwnerURL returns the app API of the replica that owns productKey, as
// last seen; the app API forwards requests for it there.
func (r *Router) OwnerURL(productKey string) (string, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	u, ok := r.owners[productKey]
	return u, ok
}

// DeviceTasks lists a device's tasks.
func (r *Router) DeviceTasks(productKey, device string) ([]fleet.DeviceTask, bool) {
	if e := r.engine(productKey); e != nil {
		return e.DeviceTasks(productKey, device)
	}
	return nil, false
}
