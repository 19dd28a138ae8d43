package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// DefaultInventoryInterval is how often the Product controller copies a
// product's inventory from the engine into its status.
const DefaultInventoryInterval = 10 * time.Second

// Field indexes of the Product controller, named apart from other
// controllers' indexes.
const productKeyIndex = "product-controller.spec.productKey"

// ProductReconciler gives each productKey to one Product and writes the
// Product's device inventory, which the engine counts, into its status.
type ProductReconciler struct {
	client.Client
	// APIReader reads claims the cache may not have seen yet, after a
	// create lost a race; mgr.GetAPIReader() by default.
	APIReader client.Reader
	// Engine is the rollout engine the owner of each productKey is
	// registered with; nil in tests of the status alone.
	Engine Engine
	// Recorder emits events when a Product loses or gains its productKey.
	Recorder events.EventRecorder
	// InventoryInterval is how often the inventory in status is brought
	// up to date: a status write per device report would cost the API
	// server as much as the reports.
	InventoryInterval time.Duration
}

// +kubebuilder:rbac:groups=ota.otafleet.dev,resources=products,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=ota.otafleet.dev,resources=products/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=ota.otafleet.dev,resources=products/finalizers,verbs=update
// +kubebuilder:rbac:groups=ota.otafleet.dev,resources=productkeyclaims,verbs=get;list;watch;create
// +kubebuilder:rbac:groups=ota.otafleet.dev,resources=deviceslices,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers the controller, its indexes and watches.
func (r *ProductReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder("product-controller")
	}
	if r.InventoryInterval == 0 {
		r.InventoryInterval = DefaultInventoryInterval
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	ctx := context.Background()
	if err := errors.Join(
		indexCampaignFirmware(ctx, mgr.GetFieldIndexer()),
		mgr.GetFieldIndexer().IndexField(ctx, &otav1.Product{}, productKeyIndex, func(o client.Object) []string {
			return []string{o.(*otav1.Product).Spec.ProductKey}
		}),
	); err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr)
	if r.Engine != nil {
		b = b.WithOptions(controller.Options{NeedLeaderElection: leaderOnly(r.Engine)})
		if ch := onAcquire(r.Engine, r.productsWithKey); ch != nil {
			b = b.WatchesRawSource(source.Channel(ch, &handler.EnqueueRequestForObject{}))
		}
	}
	return b.
		// Generation or deletion: a finalizer's deletion does not change
		// the generation.
		For(&otav1.Product{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, deletionStarted))).
		// When a Product comes or goes, the others with its key may win or
		// lose it.
		Watches(&otav1.Product{}, handler.EnqueueRequestsFromMapFunc(r.productsWithSameKey),
			builder.WithPredicates(predicate.Funcs{
				UpdateFunc:  func(event.UpdateEvent) bool { return false },
				GenericFunc: func(event.GenericEvent) bool { return false },
			})).
		Named("product").
		Complete(r)
}

// Reconcile decides whether the Product owns its productKey, registers the
// owner with the engine, and summarizes its inventory.
func (r *ProductReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, retErr error) {
	p := &otav1.Product{}
	if err := r.Get(ctx, req.NamespacedName, p); err != nil {
		if apierrors.IsNotFound(err) {
			forgetVersions(req.Namespace, req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if r.Engine != nil && !r.Engine.Owns(p.Spec.ProductKey) {
		return ctrl.Result{}, nil // the replica that owns the key decides for it
	}
	base := p.DeepCopy()
	defer func() {
		if err := r.patchStatus(ctx, base, p); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()
	if !p.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, p)
	}
	if controllerutil.AddFinalizer(p, ProductFinalizer) {
		if err := r.Update(ctx, p); err != nil {
			return ctrl.Result{}, err
		}
		base = p.DeepCopy()
	}
	refusal, err := r.decideOwner(ctx, p)
	if err != nil {
		return ctrl.Result{}, err
	}
	if refusal != "" {
		r.forget(p)
		r.markDuplicate(ctx, p, refusal)
		return ctrl.Result{}, nil
	}
	if !r.register(p) {
		// The engine still holds a Product this reconciler refused; its
		// reconcile takes it out.
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	r.markOwner(p, r.inventory(p))
	return ctrl.Result{RequeueAfter: r.InventoryInterval}, nil
}

// keyOwner returns the Product among list that owns their productKey: the
// oldest one not being deleted, ties broken by namespace and name so that
// every replica and every reconcile agrees.
func keyOwner(p *otav1.Product, list []otav1.Product) *otav1.Product {
	owner := p
	for i := range list {
		if list[i].DeletionTimestamp.IsZero() && olderProduct(&list[i], owner) {
			owner = &list[i]
		}
	}
	return owner
}

func olderProduct(a, b *otav1.Product) bool {
	ta, tb := a.CreationTimestamp.Time, b.CreationTimestamp.Time
	if !ta.Equal(tb) {
		return ta.Before(tb)
	}
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}

// markDuplicate stalls a Product refused its productKey; msg says why
// without naming anything outside the Product's namespace.
func (r *ProductReconciler) markDuplicate(ctx context.Context, p *otav1.Product, msg string) {
	wasStalled := apimeta.IsStatusConditionTrue(p.Status.Conditions, otav1.ConditionStalled)
	p.Status = otav1.ProductStatus{Conditions: p.Status.Conditions}
	setProductConditions(p, metav1.ConditionFalse, otav1.ReasonDuplicateProduct, msg)
	forgetVersions(p.Namespace, p.Name)
	if !wasStalled {
		log.FromContext(ctx).Info("Product stalled: duplicate productKey", "reason", msg)
		r.Recorder.Eventf(p, nil, corev1.EventTypeWarning, otav1.ReasonDuplicateProduct, "Reconcile", "%s", msg)
	}
}

func (r *ProductReconciler) markOwner(p *otav1.Product, inv inventory) {
	wasStalled := apimeta.IsStatusConditionTrue(p.Status.Conditions, otav1.ConditionStalled)
	p.Status.Devices, p.Status.Slices, p.Status.Modules = inv.devices, inv.slices, inv.modules
	msg := fmt.Sprintf("Owns productKey %q; %d devices in %d slices", p.Spec.ProductKey, inv.devices, inv.slices)
	setProductConditions(p, metav1.ConditionTrue, otav1.ReasonSucceeded, msg)
	recordVersions(p)
	if wasStalled {
		r.Recorder.Eventf(p, nil, corev1.EventTypeNormal, otav1.ReasonSucceeded, "Reconcile",
			"Product now owns productKey %q", p.Spec.ProductKey)
	}
}

func setProductConditions(p *otav1.Product, ready metav1.ConditionStatus, reason, msg string) {
	p.Status.ObservedGeneration = p.Generation
	apimeta.SetStatusCondition(&p.Status.Conditions, metav1.Condition{Type: otav1.ConditionReady, Status: ready,
		Reason: reason, Message: msg, ObservedGeneration: p.Generation})
	if ready == metav1.ConditionTrue {
		apimeta.RemoveStatusCondition(&p.Status.Conditions, otav1.ConditionStalled)
		return
	}
	apimeta.SetStatusCondition(&p.Status.Conditions, metav1.Condition{Type: otav1.ConditionStalled,
		Status: metav1.ConditionTrue, Reason: reason, Message: msg, ObservedGeneration: p.Generation})
}

// inventory is the engine's count of the product's devices; while the
// engine is still loading, the status keeps what it said.
func (r *ProductReconciler) inventory(p *otav1.Product) inventory {
	if r.Engine != nil {
		if fi, ok := r.Engine.Inventory(p.Spec.ProductKey); ok {
			return summarizeInventory(fi, p.Spec.Modules)
		}
	}
	return inventory{devices: p.Status.Devices, slices: p.Status.Slices, modules: p.Status.Modules}
}

// patchStatus writes a changed status, guarded by the resourceVersion it
// was computed from (see FirmwareReconciler.patchStatus).
func (r *ProductReconciler) patchStatus(ctx context.Context, base, p *otav1.Product) error {
	if p.Name == "" { // deleted in this reconcile
		return nil
	}
	if equality.Semantic.DeepEqual(base.Status, p.Status) {
		return nil
	}
	err := r.Status().Patch(ctx, p, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// productsWithKey lists the Products with a productKey.
func (r *ProductReconciler) productsWithKey(ctx context.Context, pk string) []client.Object {
	var list otav1.ProductList
	if err := r.List(ctx, &list, client.MatchingFields{productKeyIndex: pk}); err != nil {
		return nil
	}
	out := make([]client.Object, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out
}

// productsWithSameKey maps a Product to every Product sharing its key.
func (r *ProductReconciler) productsWithSameKey(ctx context.Context, o client.Object) []reconcile.Request {
	var list otav1.ProductList
	if err := r.List(ctx, &list, client.MatchingFields{productKeyIndex: o.(*otav1.Product).Spec.ProductKey}); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if list.Items[i].UID != o.GetUID() {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return reqs
}
