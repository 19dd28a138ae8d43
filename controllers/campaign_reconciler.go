package controllers

import (
	"context"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/fleet"
)

// campaignKind is what differs between the two kinds of campaign, the
// UpgradeBatch and the VerificationRun; campaignReconciler does the rest.
// The steps run in this order: adopt (may write the object), early (may
// end the reconcile with a status of its own), then either inputs and,
// when they changed, spec, or setWaiting when the campaign cannot go on; last
// setStatus, and announce once the status is written.
type campaignKind[T client.Object] interface {
	ref(name string) otav1.CampaignReference
	firmware(obj T) string
	conditions(obj T) []metav1.Condition
	// adopt makes changes to the object itself, before its status is
	// computed.
	adopt(ctx context.Context, obj T) error
	// early sets a status that needs no engine and reports whether it did.
	early(obj T, now time.Time) bool
	// inputs checks the campaign may run with fw and names the versions
	// of what its spec is built from; spec builds the spec.
	inputs(ctx context.Context, obj T, fw *otav1.Firmware, pk string) (string, error)
	spec(ctx context.Context, obj T, fw *otav1.Firmware, pk string) (fleet.Spec, error)
	setStatus(obj T, s fleet.Status)
	// setWaiting records why the campaign cannot go on (err is a
	// *waitError, or the engine is not ready).
	setWaiting(obj T, err error)
	// announce records Events for what changed between two statuses.
	announce(orig, obj T)
	forget(nn types.NamespacedName)
}

// campaignReconciler reconciles one kind of campaign: scope (get the
// object), steps (sync it with the engine), and one deferred status patch,
// the shape of the Firmware reconciler.
type campaignReconciler[T client.Object] struct {
	client.Client
	engine Engine
	kind   campaignKind[T]
	newObj func() T
}

func (r *campaignReconciler[T]) reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, retErr error) {
	obj := r.newObj()
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			r.remove(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !obj.GetDeletionTimestamp().IsZero() {
		r.remove(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	if endedForProduct(r.kind.conditions(obj)) {
		return ctrl.Result{}, nil
	}
	if !r.engine.Owns(productKeyOf(ctx, r.Client, obj.GetNamespace(), r.kind.firmware(obj))) {
		return ctrl.Result{}, nil // another replica owns the product and reconciles the campaign
	}
	if err := r.kind.adopt(ctx, obj); err != nil {
		return ctrl.Result{}, err
	}
	orig := obj.DeepCopyObject().(T)
	res, err := r.steps(ctx, obj)
	if err != nil {
		return res, err
	}
	return res, r.patchStatus(ctx, orig, obj)
}

func (r *campaignReconciler[T]) remove(nn types.NamespacedName) {
	r.engine.Remove(nn.Namespace, r.kind.ref(nn.Name))
	r.kind.forget(nn)
}

// steps brings the object's status up to date with the engine.
func (r *campaignReconciler[T]) steps(ctx context.Context, obj T) (ctrl.Result, error) {
	if r.kind.early(obj, time.Now()) {
		return ctrl.Result{}, nil
	}
	st, err := r.sync(ctx, obj)
	if requeue, ok := requeueFor(err); ok {
		if es, inEngine := holdCampaign(r.engine, obj.GetNamespace(), r.kind.ref(obj.GetName()), err); inEngine {
			r.kind.setStatus(obj, es)
		}
		r.kind.setWaiting(obj, err)
		return ctrl.Result{RequeueAfter: requeue}, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	r.kind.setStatus(obj, st)
	return ctrl.Result{RequeueAfter: st.NextCheck}, nil
}

// sync hands the engine the campaign's spec when what it is built from
// changed, and otherwise only reads the campaign's status.
func (r *campaignReconciler[T]) sync(ctx context.Context, obj T) (fleet.Status, error) {
	ns, ref := obj.GetNamespace(), r.kind.ref(obj.GetName())
	fw, pk, err := resolveFirmware(ctx, r.Client, r.engine, ns, r.kind.firmware(obj))
	if err != nil {
		return fleet.Status{}, err
	}
	inputs, err := r.kind.inputs(ctx, obj, fw, pk)
	if err != nil {
		return fleet.Status{}, err
	}
	if st, ok := r.engine.Current(ns, ref, inputs); ok {
		return st, nil
	}
	s, err := r.kind.spec(ctx, obj, fw, pk)
	if err != nil {
		return fleet.Status{}, err
	}
	s.Inputs = inputs
	return r.engine.Upsert(s)
}

// patchStatus writes a changed status, guarded by the resourceVersion it
// was computed from: a merge patch against a stale cached copy would leave
// out counters that went back to zero, and the server would keep their old
// values. Events are announced only after the write, so that a patch that
// lost a conflict, and the reconcile that repeats it, announce nothing
// twice.
func (r *campaignReconciler[T]) patchStatus(ctx context.Context, orig, obj T) error {
	if equality.Semantic.DeepEqual(orig, obj) {
		return nil
	}
	if err := r.Status().Patch(ctx, obj, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		log.FromContext(ctx).V(1).Info("Status patch failed", "error", err.Error())
		return client.IgnoreNotFound(err)
	}
	r.kind.announce(orig, obj)
	return nil
}

// setupCampaign registers a campaign reconciler: it watches the kind's
// spec changes, the engine's status events for the kind, and the Firmwares
// its campaigns use.
func setupCampaign[T client.Object](mgr ctrl.Manager, e Engine, obj T, list client.ObjectList,
	kind otav1.CampaignKind, r reconcile.Reconciler) error {
	if err := indexCampaignFirmware(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return err
	}
	c := mgr.GetClient()
	b := ctrl.NewControllerManagedBy(mgr).
		// Spec changes only: the engine's events cover progress, and a
		// reconcile per status patch would write status at API speed.
		For(obj, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named(strings.ToLower(string(kind))).
		WithOptions(controller.Options{NeedLeaderElection: leaderOnly(e)}).
		WatchesRawSource(source.Channel(campaignEvents(e, kind), &handler.EnqueueRequestForObject{}))
	// A product taken over: every campaign of the kind is looked at, the
	// ones of other products return at once.
	if ch := onAcquire(e, func(ctx context.Context, _ string) []client.Object {
		return objectsOf(ctx, c, list.DeepCopyObject().(client.ObjectList))
	}); ch != nil {
		b = b.WatchesRawSource(source.Channel(ch, &handler.EnqueueRequestForObject{}))
	}
	return b.
		Watches(&otav1.Firmware{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, fw client.Object) []reconcile.Request {
			return campaignsOf(ctx, c, list.DeepCopyObject().(client.ObjectList), fw)
		})).
		Complete(r)
}

// objectsOf lists the objects of a kind from the cache.
func objectsOf(ctx context.Context, c client.Reader, list client.ObjectList) []client.Object {
	if err := c.List(ctx, list); err != nil {
		return nil
	}
	var out []client.Object
	_ = apimeta.EachListItem(list, func(o runtime.Object) error {
		out = append(out, o.(client.Object))
		return nil
	})
	return out
}
