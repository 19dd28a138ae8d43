package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/fleet"
)

// Engine is what the controllers need of the rollout engine: a
// *fleet.Engine for every product (one leader), or a *shard.Router over
// the engines of the products this replica owns by Lease.
type Engine interface {
	// Owns reports whether this replica decides for productKey; the empty
	// key stands for a campaign whose product is not known yet.
	Owns(productKey string) bool
	SyncProduct(p *otav1.Product) bool
	RemoveProduct(nn types.NamespacedName)
	ProductKeyOf(nn types.NamespacedName) (string, bool)
	Inventory(productKey string) (fleet.Inventory, bool)
	Upsert(s fleet.Spec) (fleet.Status, error)
	Current(namespace string, ref otav1.CampaignReference, inputs string) (fleet.Status, bool)
	Remove(namespace string, ref otav1.CampaignReference)
	Hold(namespace string, ref otav1.CampaignReference, cancel bool) (fleet.Status, bool)
	Notify(n fleet.Notifier, tasks bool) (remove func())
}

var _ Engine = (*fleet.Engine)(nil)

// acquirer is an Engine whose products come and go (a *shard.Router): the
// controllers reconcile a product's objects again when this replica takes
// it over.
type acquirer interface {
	OnAcquire(func(productKey string))
}

// leaderOnly says whether controllers working with e run on the leader
// only: with products owned by Lease, every replica runs them for its own
// products.
func leaderOnly(e Engine) *bool {
	_, sharded := e.(acquirer)
	return ptr.To(!sharded)
}

// onAcquire sends an event for each object objects returns whenever this
// replica takes a product over; nil when products do not move.
func onAcquire(e Engine, objects func(ctx context.Context, productKey string) []client.Object) <-chan event.GenericEvent {
	a, ok := e.(acquirer)
	if !ok {
		return nil
	}
	ch := make(chan event.GenericEvent, 1024)
	a.OnAcquire(func(pk string) {
		for _, o := range objects(context.Background(), pk) {
			ch <- event.GenericEvent{Object: o}
		}
	})
	return ch
}

// productKeyOf reads the productKey a campaign's Firmware names, from the
// cache: "" when the Firmware or the Product is not there (yet).
func productKeyOf(ctx context.Context, c client.Reader, ns, firmware string) string {
	fw := &otav1.Firmware{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: firmware}, fw); err != nil {
		return ""
	}
	p := &otav1.Product{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: fw.Spec.Product}, p); err != nil {
		return ""
	}
	return p.Spec.ProductKey
}
