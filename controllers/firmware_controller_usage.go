package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/signature"
)

// fwProductIndex indexes Firmwares by spec.product.
const fwProductIndex = "firmware-controller.spec.product"

func indexFirmwareUsage(ctx context.Context, idx client.FieldIndexer) error {
	return errors.Join(
		idx.IndexField(ctx, &otav1.Firmware{}, fwProductIndex, func(o client.Object) []string {
			return []string{o.(*otav1.Firmware).Spec.Product}
		}),
		indexCampaignFirmware(ctx, idx),
	)
}

// reconcileProduct finds the Firmware's Product and copies its productKey.
// A missing Product does not stop the image from being stored.
func (r *FirmwareReconciler) reconcileProduct(ctx context.Context, s *firmwareScope) error {
	fw := s.fw
	p := &otav1.Product{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: fw.Namespace, Name: fw.Spec.Product}, p); err != nil {
		if !apierrors.IsNotFound(err) {
			return err
		}
		fw.Status.ProductKey = ""
		s.block(otav1.ReasonProductNotFound, fmt.Sprintf("Product %q not found in namespace %s", fw.Spec.Product, fw.Namespace), false)
		return nil
	}
	s.product = p
	fw.Status.ProductKey = p.Spec.ProductKey
	if !p.DeletionTimestamp.IsZero() {
		// Not Ready, so that campaigns hear of it and cancel themselves.
		s.block(otav1.ReasonProductDeleted, fmt.Sprintf("Product %q is being deleted", p.Name), true)
	}
	if c := apimeta.FindStatusCondition(p.Status.Conditions, otav1.ConditionStalled); c != nil &&
		c.Status == metav1.ConditionTrue && c.Reason == otav1.ReasonDuplicateProduct {
		s.block(otav1.ReasonDuplicateProduct, fmt.Sprintf("Product %q: %s", p.Name, c.Message), true)
	}
	if m := moduleOf(fw); m != otav1.DefaultModule && !slices.Contains(p.Spec.Modules, m) {
		s.block(otav1.ReasonInvalidSpec, fmt.Sprintf("Module %q is not one of Product %q's modules %v; add it there",
			m, p.Name, p.Spec.Modules), true)
	}
	return nil
}

func moduleOf(fw *otav1.Firmware) string {
	if fw.Spec.Module == "" {
		return otav1.DefaultModule
	}
	return fw.Spec.Module
}

// reconcileSignature checks the Ed25519 signature of the image's SHA-256
// against the public key in a Secret. A signature found valid for the
// current spec and image is not checked again, so that rotating the key
// Secret does not take Ready images away from running campaigns.
func (r *FirmwareReconciler) reconcileSignature(ctx context.Context, s *firmwareScope) error {
	fw, sig := s.fw, s.fw.Spec.Signature
	if sig == nil || fw.Status.Artifact == nil {
		return nil
	}
	if c := readyCondition(s.base); c != nil && c.Status == metav1.ConditionTrue &&
		c.ObservedGeneration == fw.Generation && equality.Semantic.DeepEqual(s.base.Status.Artifact, fw.Status.Artifact) {
		return nil
	}
	ref := sig.PublicKeyRef
	secret := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: fw.Namespace, Name: ref.Name}, secret); err != nil {
		if apierrors.IsNotFound(err) {
			s.wait(ReasonPublicKeyUnavailable, fmt.Sprintf("Secret %q with the public key not found", ref.Name), 30*time.Second)
			return nil
		}
		s.block(ReasonPublicKeyUnavailable, fmt.Sprintf("Reading Secret %q: %v", ref.Name, err), false)
		return err
	}
	data, ok := secret.Data[ref.Key]
	if !ok {
		s.wait(ReasonPublicKeyUnavailable, fmt.Sprintf("Secret %q has no key %q", ref.Name, ref.Key), 30*time.Second)
		return nil
	}
	pub, err := signature.ParsePublicKey(data)
	if err != nil {
		s.stall(otav1.ReasonSignatureInvalid, fmt.Sprintf("Public key in Secret %q key %q: %v", ref.Name, ref.Key, err))
		return nil
	}
	if err := signature.VerifyDigest(pub, fw.Status.Artifact.SHA256, sig.Value); err != nil {
		s.stall(otav1.ReasonSignatureInvalid, fmt.Sprintf("Ed25519 signature refused: %v", err))
	}
	return nil
}

// reconcileUsage counts the campaigns using the image, and the devices
// running it as the Product's version distribution reports them (exact for
// the 20 most common versions of a module; a rarer version counts 0).
func (r *FirmwareReconciler) reconcileUsage(ctx context.Context, s *firmwareScope) error {
	fw := s.fw
	opts := []client.ListOption{client.InNamespace(fw.Namespace), client.MatchingFields{campaignFirmwareIndex: fw.Name}}
	var runs otav1.VerificationRunList
	var batches otav1.UpgradeBatchList
	if err := r.List(ctx, &runs, opts...); err != nil {
		return err
	}
	if err := r.List(ctx, &batches, opts...); err != nil {
		return err
	}
	s.activeCampaigns = s.activeCampaigns[:0]
	for i := range runs.Items {
		if runActive(runs.Items[i].Status.Phase) {
			s.activeCampaigns = append(s.activeCampaigns, "VerificationRun/"+runs.Items[i].Name)
		}
	}
	for i := range batches.Items {
		if batchActive(batches.Items[i].Status.Phase) {
			s.activeCampaigns = append(s.activeCampaigns, "UpgradeBatch/"+batches.Items[i].Name)
		}
	}
	slices.Sort(s.activeCampaigns)
	fw.Status.Usage = otav1.FirmwareUsage{
		Campaigns:       int32(len(runs.Items) + len(batches.Items)),
		ActiveCampaigns: int32(len(s.activeCampaigns)),
		Devices:         devicesOnVersion(s.product, moduleOf(fw), fw.Spec.Version),
	}
	return nil
}

func runActive(p otav1.RunPhase) bool {
	return p == "" || p == otav1.RunPending || p == otav1.RunRunning
}

func batchActive(p otav1.BatchPhase) bool {
	return p == "" || p == otav1.BatchPlanned || p == otav1.BatchRunning || p == otav1.BatchPaused
}

func devicesOnVersion(p *otav1.Product, module, version string) int64 {
	if p == nil {
		return 0
	}
	for _, m := range p.Status.Modules {
		if m.Module != module {
			continue
		}
		for _, v := range m.Versions {
			if v.Version == version {
				return v.Devices
			}
		}
	}
	return 0
}

func conditionReason(conds []metav1.Condition) string {
	if c := apimeta.FindStatusCondition(conds, otav1.ConditionReady); c != nil {
		return c.Reason
	}
	return ""
}

func readyCondition(fw *otav1.Firmware) *metav1.Condition {
	return apimeta.FindStatusCondition(fw.Status.Conditions, otav1.ConditionReady)
}

// firmwaresOfProduct maps a Product to the Firmwares naming it.
func (r *FirmwareReconciler) firmwaresOfProduct(ctx context.Context, o client.Object) []reconcile.Request {
	var list otav1.FirmwareList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{fwProductIndex: o.GetName()}); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}

// campaignFirmware maps a campaign to the Firmware it uses.
func campaignFirmware(_ context.Context, o client.Object) []reconcile.Request {
	name, _ := campaignFields(o)
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
}

// campaignFields returns a campaign's firmware and what of its state the
// Firmware follows: the phase, and for a run also what decides whether it
// counts for the verification (its image, owner and reason).
func campaignFields(o client.Object) (firmware, state string) {
	switch c := o.(type) {
	case *otav1.VerificationRun:
		state := string(c.Status.Phase) + "|" + c.Status.SHA256 + "|" + conditionReason(c.Status.Conditions)
		for _, ref := range c.OwnerReferences {
			state += "|" + string(ref.UID)
		}
		return c.Spec.Firmware, state
	case *otav1.UpgradeBatch:
		return c.Spec.Firmware, string(c.Status.Phase)
	}
	return "", ""
}

// campaignUsageChanged passes the campaign events that change a Firmware's
// usage: campaigns report progress often, their phase rarely.
var campaignUsageChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		oldFw, oldPhase := campaignFields(e.ObjectOld)
		newFw, newPhase := campaignFields(e.ObjectNew)
		return oldFw != newFw || oldPhase != newPhase
	},
	GenericFunc: func(event.GenericEvent) bool { return false },
}

// verificationChanged passes the status updates VerificationRuns write into
// a Firmware, so that its Reconciling and Stalled follow the verification.
var verificationChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, okOld := e.ObjectOld.(*otav1.Firmware)
		n, okNew := e.ObjectNew.(*otav1.Firmware)
		return okOld && okNew && o.Status.Verification.State != n.Status.Verification.State
	},
	GenericFunc: func(event.GenericEvent) bool { return false },
}
