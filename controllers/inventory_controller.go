package controllers

import (
	"context"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/fleet"
)

// InventoryReconciler registers Products with the rollout engine, so that
// devices of a known product are taken in and others are ignored.
type InventoryReconciler struct {
	client.Client
	Engine *fleet.Engine
}

// Reconcile registers or forgets one Product.
func (r *InventoryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	p := &otav1.Product{}
	err := r.Get(ctx, req.NamespacedName, p)
	if err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, err
	}
	if apierrors.IsNotFound(err) || !p.DeletionTimestamp.IsZero() {
		r.Engine.RemoveProduct(req.NamespacedName)
		// A Product that lost the productKey to this one may take it now.
		return ctrl.Result{}, r.syncAll(ctx)
	}
	r.Engine.SyncProduct(p)
	return ctrl.Result{}, nil
}

// syncAll offers every Product to the engine, oldest first, so that the
// oldest claimant of a freed productKey gets it.
func (r *InventoryReconciler) syncAll(ctx context.Context) error {
	var list otav1.ProductList
	if err := r.List(ctx, &list); err != nil {
		return err
	}
	slices.SortFunc(list.Items, func(a, b otav1.Product) int {
		return a.CreationTimestamp.Compare(b.CreationTimestamp.Time)
	})
	for i := range list.Items {
		if list.Items[i].DeletionTimestamp.IsZero() {
			r.Engine.SyncProduct(&list.Items[i])
		}
	}
	return nil
}

// SetupWithManager registers the reconciler.
func (r *InventoryReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).For(&otav1.Product{}).Named("inventory").Complete(r)
}
