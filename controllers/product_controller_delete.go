package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// ProductFinalizer holds a Product until the campaigns of its Firmwares
// are canceled and the engine has let go of its devices.
const ProductFinalizer = "ota.otafleet.dev/product-campaigns"

// deleteRecheck is how often a held deletion looks at its campaigns again;
// they are canceled within a reconcile or two.
const deleteRecheck = 2 * time.Second

// reconcileDelete: deleting a Product cancels its campaigns (each one's
// reconciler cancels it in the engine once it sees the Product going), and
// the Product goes only once none is active. Until then its devices stay
// registered, so that canceling frees them; afterwards no campaign can
// push for it, and a Product created again under its name or key starts
// from devices no old campaign holds.
func (r *ProductReconciler) reconcileDelete(ctx context.Context, p *otav1.Product) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(p, ProductFinalizer) {
		return ctrl.Result{}, nil
	}
	active, err := r.activeCampaigns(ctx, p)
	if err != nil {
		return ctrl.Result{}, err
	}
	if len(active) > 0 {
		r.holdDeletion(p, active)
		return ctrl.Result{RequeueAfter: deleteRecheck}, nil
	}
	if r.Engine != nil {
		r.Engine.RemoveProduct(client.ObjectKeyFromObject(p))
	}
	controllerutil.RemoveFinalizer(p, ProductFinalizer)
	if err := r.Update(ctx, p); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	// Gone: nothing left to patch.
	*p = otav1.Product{}
	return ctrl.Result{}, nil
}

// activeCampaigns names the unfinished campaigns of p's Firmwares.
func (r *ProductReconciler) activeCampaigns(ctx context.Context, p *otav1.Product) ([]string, error) {
	var fws otav1.FirmwareList
	if err := r.List(ctx, &fws, client.InNamespace(p.Namespace)); err != nil {
		return nil, err
	}
	var active []string
	for i := range fws.Items {
		if fws.Items[i].Spec.Product != p.Name {
			continue
		}
		opts := []client.ListOption{client.InNamespace(p.Namespace),
			client.MatchingFields{campaignFirmwareIndex: fws.Items[i].Name}}
		var runs otav1.VerificationRunList
		var batches otav1.UpgradeBatchList
		if err := r.List(ctx, &runs, opts...); err != nil {
			return nil, err
		}
		if err := r.List(ctx, &batches, opts...); err != nil {
			return nil, err
		}
		for _, vr := range runs.Items {
			if runActive(vr.Status.Phase) {
				active = append(active, "VerificationRun/"+vr.Name)
			}
		}
		for _, ub := range batches.Items {
			if batchActive(ub.Status.Phase) {
				active = append(active, "UpgradeBatch/"+ub.Name)
			}
		}
	}
	slices.Sort(active)
	return active, nil
}

// holdDeletion says, in a condition, which campaigns the deletion waits
// for; the event is emitted once, when the condition first appears.
func (r *ProductReconciler) holdDeletion(p *otav1.Product, active []string) {
	msg := fmt.Sprintf("Deleting: canceling %d campaign(s) of this product first: %s",
		len(active), strings.Join(active, ", "))
	prev := apimeta.FindStatusCondition(p.Status.Conditions, otav1.ConditionReconciling)
	apimeta.SetStatusCondition(&p.Status.Conditions, metav1.Condition{Type: otav1.ConditionReconciling,
		Status: metav1.ConditionTrue, Reason: otav1.ReasonProductDeleted, Message: msg, ObservedGeneration: p.Generation})
	if prev == nil || prev.Reason != otav1.ReasonProductDeleted {
		r.Recorder.Eventf(p, nil, corev1.EventTypeNormal, otav1.ReasonProductDeleted, "Delete", "%s", msg)
	}
}
