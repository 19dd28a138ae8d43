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
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// DefaultInventoryInterval is how long the Product controller lets slice
// changes pile up before it recomputes a product's inventory.
const DefaultInventoryInterval = 10 * time.Second

// Field indexes of the Product controller, named apart from other
// controllers' indexes.
const (
	productKeyIndex = "product-controller.spec.productKey"
	sliceKeyIndex   = "product-controller.productKey"
)

// ProductReconciler gives each productKey to one Product and summarizes
// the Product's device inventory from its DeviceSlices.
type ProductReconciler struct {
	client.Client
	// Recorder emits events when a Product loses or gains its productKey.
	Recorder events.EventRecorder
	// InventoryInterval bounds how often slice changes recompute the
	// inventory: the engine writes slices continuously during a rollout,
	// and one pass reads every device of the product.
	InventoryInterval time.Duration
}

// +kubebuilder:rbac:groups=ota.otafleet.dev,resources=products,verbs=get;list;watch
// +kubebuilder:rbac:groups=ota.otafleet.dev,resources=products/status,verbs=get;update;patch
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
	ctx := context.Background()
	if err := errors.Join(
		mgr.GetFieldIndexer().IndexField(ctx, &otav1.Product{}, productKeyIndex, func(o client.Object) []string {
			return []string{o.(*otav1.Product).Spec.ProductKey}
		}),
		mgr.GetFieldIndexer().IndexField(ctx, &otav1.DeviceSlice{}, sliceKeyIndex, func(o client.Object) []string {
			return []string{o.(*otav1.DeviceSlice).ProductKey}
		}),
	); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&otav1.Product{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// When a Product comes or goes, the others with its key may win or
		// lose it.
		Watches(&otav1.Product{}, handler.EnqueueRequestsFromMapFunc(r.productsWithSameKey),
			builder.WithPredicates(predicate.Funcs{
				UpdateFunc:  func(event.UpdateEvent) bool { return false },
				GenericFunc: func(event.GenericEvent) bool { return false },
			})).
		Watches(&otav1.DeviceSlice{}, r.delayedSliceHandler()).
		Named("product").
		Complete(r)
}

// Reconcile decides whether the Product owns its productKey and summarizes
// its inventory.
func (r *ProductReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, retErr error) {
	p := &otav1.Product{}
	if err := r.Get(ctx, req.NamespacedName, p); err != nil {
		if apierrors.IsNotFound(err) {
			forgetVersions(req.Namespace, req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	base := p.DeepCopy()
	defer func() {
		if err := r.patchStatus(ctx, base, p); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()

	owner, err := r.keyOwner(ctx, p)
	if err != nil {
		return ctrl.Result{}, err
	}
	if owner.GetUID() != p.GetUID() {
		r.markDuplicate(ctx, p, owner)
		return ctrl.Result{}, nil
	}
	inv, err := r.inventory(ctx, p)
	if err != nil {
		return ctrl.Result{}, err
	}
	r.markOwner(p, inv)
	return ctrl.Result{}, nil
}

// keyOwner returns the Product that owns p's productKey: the oldest one in
// the cluster, ties broken by namespace and name so that every replica and
// every reconcile agrees.
func (r *ProductReconciler) keyOwner(ctx context.Context, p *otav1.Product) (*otav1.Product, error) {
	var list otav1.ProductList
	if err := r.List(ctx, &list, client.MatchingFields{productKeyIndex: p.Spec.ProductKey}); err != nil {
		return nil, err
	}
	owner := p
	for i := range list.Items {
		if olderProduct(&list.Items[i], owner) {
			owner = &list.Items[i]
		}
	}
	return owner, nil
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

func (r *ProductReconciler) markDuplicate(ctx context.Context, p, owner *otav1.Product) {
	msg := fmt.Sprintf("productKey %q already belongs to Product %s/%s, created earlier; devices of this key are "+
		"managed there. Delete one of the two, or give this one another productKey", p.Spec.ProductKey, owner.Namespace, owner.Name)
	wasStalled := apimeta.IsStatusConditionTrue(p.Status.Conditions, otav1.ConditionStalled)
	p.Status = otav1.ProductStatus{Conditions: p.Status.Conditions}
	setProductConditions(p, metav1.ConditionFalse, otav1.ReasonDuplicateProduct, msg)
	forgetVersions(p.Namespace, p.Name)
	if !wasStalled {
		log.FromContext(ctx).Info("Product stalled: duplicate productKey", "owner", klog.KObj(owner))
		r.Recorder.Eventf(p, owner, corev1.EventTypeWarning, otav1.ReasonDuplicateProduct, "Reconcile", "%s", msg)
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

// inventory reads the Product's slices from the cache without copying
// them: one pass may cover a million devices.
func (r *ProductReconciler) inventory(ctx context.Context, p *otav1.Product) (inventory, error) {
	var list otav1.DeviceSliceList
	err := r.List(ctx, &list, client.InNamespace(p.Namespace),
		client.MatchingFields{sliceKeyIndex: p.Spec.ProductKey}, client.UnsafeDisableDeepCopy)
	if err != nil {
		return inventory{}, err
	}
	return summarizeInventory(list.Items, p.Spec.Modules), nil
}

// patchStatus writes a changed status, guarded by the resourceVersion it
// was computed from (see FirmwareReconciler.patchStatus).
func (r *ProductReconciler) patchStatus(ctx context.Context, base, p *otav1.Product) error {
	if equality.Semantic.DeepEqual(base.Status, p.Status) {
		return nil
	}
	err := r.Status().Patch(ctx, p, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
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

// delayedSliceHandler enqueues a slice's Products after InventoryInterval.
// The delaying queue keeps the earliest time for a key, so a stream of
// slice writes costs one inventory pass per interval, not one per write.
func (r *ProductReconciler) delayedSliceHandler() handler.EventHandler {
	enqueue := func(ctx context.Context, o client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		slice, ok := o.(*otav1.DeviceSlice)
		if !ok {
			return
		}
		var list otav1.ProductList
		if err := r.List(ctx, &list, client.InNamespace(slice.Namespace),
			client.MatchingFields{productKeyIndex: slice.ProductKey}); err != nil {
			return
		}
		for i := range list.Items {
			q.AddAfter(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])}, r.InventoryInterval)
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, e.Object, q)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, e.ObjectNew, q)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueue(ctx, e.Object, q)
		},
	}
}
