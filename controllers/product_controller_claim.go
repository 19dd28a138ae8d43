package controllers

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// decideOwner is the one place that decides whether p owns its productKey;
// the engine registers whom it decides for. It returns why p does not, or
// "". A productKey belongs to the namespace that claimed it first (a
// cluster-scoped ProductKeyClaim that outlives every Product, so deleting
// a Product never hands its devices to another team); within that
// namespace the oldest Product with the key owns it.
func (r *ProductReconciler) decideOwner(ctx context.Context, p *otav1.Product) (string, error) {
	var list otav1.ProductList
	if err := r.List(ctx, &list, client.MatchingFields{productKeyIndex: p.Spec.ProductKey}); err != nil {
		return "", err
	}
	claim, err := r.claim(ctx, p, list.Items)
	if err != nil {
		return "", err
	}
	if claim.Spec.Namespace != p.Namespace {
		// Neither the namespace nor the Product is named: they belong to
		// another team.
		return fmt.Sprintf("productKey %q is claimed by another namespace; its devices are managed there. "+
			"If the key is yours, a cluster admin can release it by deleting ProductKeyClaim %s",
			p.Spec.ProductKey, claim.Name), nil
	}
	var mine []otav1.Product
	for _, o := range list.Items {
		if o.Namespace == p.Namespace {
			mine = append(mine, o)
		}
	}
	if owner := keyOwner(p, mine); owner.UID != p.UID {
		return fmt.Sprintf("productKey %q already belongs to Product %q in this namespace, created earlier. "+
			"Delete one of the two, or give this one another productKey", p.Spec.ProductKey, owner.Name), nil
	}
	return "", nil
}

// claim returns the productKey's claim, creating it when there is none. A
// new claim goes to the namespace of the oldest live Product with the key,
// so that keys in use before claims existed stay where they were.
func (r *ProductReconciler) claim(ctx context.Context, p *otav1.Product, all []otav1.Product) (*otav1.ProductKeyClaim, error) {
	name := otav1.ClaimName(p.Spec.ProductKey)
	claim := &otav1.ProductKeyClaim{}
	err := r.APIReader.Get(ctx, types.NamespacedName{Name: name}, claim)
	if err == nil || !apierrors.IsNotFound(err) {
		return claim, err
	}
	owner := keyOwner(p, all)
	claim = &otav1.ProductKeyClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       otav1.ProductKeyClaimSpec{ProductKey: p.Spec.ProductKey, Namespace: owner.Namespace},
	}
	if err := r.Create(ctx, claim); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			return nil, err
		}
		// Another reconcile claimed it first: it holds.
		err = r.APIReader.Get(ctx, types.NamespacedName{Name: name}, claim)
		return claim, err
	}
	return claim, nil
}

// register tells the engine that p owns its key; false while the engine
// still holds another Product for the key.
func (r *ProductReconciler) register(p *otav1.Product) bool {
	if r.Engine == nil {
		return true
	}
	return r.Engine.SyncProduct(p)
}

// forget takes a refused Product out of the engine, in case it held the
// key there (registered by an earlier rule, or before a restart).
func (r *ProductReconciler) forget(p *otav1.Product) {
	if r.Engine == nil {
		return
	}
	if pk, ok := r.Engine.ProductKeyOf(client.ObjectKeyFromObject(p)); ok && pk == p.Spec.ProductKey {
		r.Engine.RemoveProduct(client.ObjectKeyFromObject(p))
	}
}

// deletionStarted passes the update that sets a deletion timestamp.
var deletionStarted = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld.GetDeletionTimestamp().IsZero() && !e.ObjectNew.GetDeletionTimestamp().IsZero()
	},
}
