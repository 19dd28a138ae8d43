package controllers

import (
	"context"

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
	if err := r.Get(ctx, req.NamespacedName, p); err != nil {
		if apierrors.IsNotFound(err) {
			r.Engine.RemoveProduct(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !p.DeletionTimestamp.IsZero() {
		r.Engine.RemoveProduct(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	r.Engine.SyncProduct(p)
	return ctrl.Result{}, nil
}

// SetupWithManager registers the reconciler.
func (r *InventoryReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).For(&otav1.Product{}).Named("inventory").Complete(r)
}
