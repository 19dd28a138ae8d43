package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/fleet"
)

// waitError is a campaign that cannot start yet; the reason and message go
// into its conditions.
type waitError struct {
	reason  string
	message string
	// stalled: only a human can fix it (for example by verifying the
	// firmware); otherwise it fixes itself (an upload in progress).
	stalled bool
	// cancel: the campaign can never go on (its Product is being
	// deleted); the engine cancels it rather than pausing it.
	cancel bool
}

func (w *waitError) Error() string { return w.message }

// resolveFirmware returns the Firmware a campaign uses, ready for pushing,
// and its product's key. A *waitError says why the campaign may not push
// now; the caller then holds it in the engine (holdCampaign).
func resolveFirmware(ctx context.Context, c client.Client, e Engine, ns, name string) (*otav1.Firmware, string, error) {
	fw := &otav1.Firmware{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, fw); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, "", &waitError{reason: otav1.ReasonFirmwareNotReady, message: fmt.Sprintf("Firmware %q not found", name)}
		}
		return nil, "", err
	}
	p := &otav1.Product{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: fw.Spec.Product}, p); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, "", &waitError{reason: otav1.ReasonProductNotFound, message: fmt.Sprintf("Product %q not found", fw.Spec.Product)}
		}
		return nil, "", err
	}
	if !p.DeletionTimestamp.IsZero() {
		return nil, "", &waitError{reason: otav1.ReasonProductDeleted, stalled: true, cancel: true,
			message: fmt.Sprintf("Product %q is being deleted: the campaign is canceled", p.Name)}
	}
	if fw.Status.Artifact == nil || !apimeta.IsStatusConditionTrue(fw.Status.Conditions, otav1.ConditionReady) {
		return nil, "", &waitError{reason: otav1.ReasonFirmwareNotReady, message: fmt.Sprintf("Firmware %q is not Ready", name)}
	}
	pk, ok := e.ProductKeyOf(types.NamespacedName{Namespace: ns, Name: fw.Spec.Product})
	if !ok {
		return nil, "", &waitError{reason: otav1.ReasonProductNotFound, message: fmt.Sprintf("Product %q is not registered", fw.Spec.Product)}
	}
	return fw, pk, nil
}

// holdCampaign keeps a campaign that may not push from pushing: the engine
// pauses it, or cancels it when it can never go on. Without this the engine
// kept pushing the last image it was given, for a Firmware no longer Ready
// or a Product already deleted. It returns the engine's status, if the
// engine has the campaign.
func holdCampaign(e Engine, ns string, ref otav1.CampaignReference, err error) (fleet.Status, bool) {
	var w *waitError
	if e == nil || !errors.As(err, &w) {
		return fleet.Status{}, false
	}
	return e.Hold(ns, ref, w.cancel)
}

// endedForProduct reports whether a campaign was canceled because its
// Product was deleted: that is final, even once a Product of the same name
// exists again, whose devices it never held.
func endedForProduct(conds []metav1.Condition) bool {
	c := apimeta.FindStatusCondition(conds, otav1.ConditionReady)
	return c != nil && c.Reason == otav1.ReasonProductDeleted
}

// imageOf is what devices are told about a Firmware's image.
func imageOf(fw *otav1.Firmware, tags map[string]string) fleet.Image {
	a := fw.Status.Artifact
	ext := map[string]string{}
	for k, v := range tags {
		ext[k] = v
	}
	if fw.Spec.PackageData != "" {
		ext["_package_udi"] = fw.Spec.PackageData
	}
	if fw.Spec.Signature != nil {
		ext["_ed25519_signature"] = fw.Spec.Signature.Value
	}
	if len(ext) == 0 {
		ext = nil
	}
	return fleet.Image{
		Bucket: a.Bucket, Key: a.Key, Size: a.Size, MD5: a.MD5, SHA256: a.SHA256,
		SignMethod: fw.Spec.SignMethod, Diff: fw.Spec.Diff, ExtData: ext,
	}
}

// requeueFor turns an engine or wait error into a result: not-ready engines
// and self-healing waits are retried soon, the rest with backoff.
func requeueFor(err error) (time.Duration, bool) {
	var w *waitError
	switch {
	case errors.Is(err, fleet.ErrNotReady):
		return time.Second, true
	case errors.Is(err, fleet.ErrUnknownProduct):
		return 5 * time.Second, true
	case errors.As(err, &w):
		return 30 * time.Second, true
	}
	return 0, false
}

func setCondition(conds *[]metav1.Condition, gen int64, typ string, status bool, reason, msg string) {
	s := metav1.ConditionFalse
	if status {
		s = metav1.ConditionTrue
	}
	apimeta.SetStatusCondition(conds, metav1.Condition{
		Type: typ, Status: s, Reason: reason, Message: msg, ObservedGeneration: gen,
	})
}

func timePtr(t time.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	mt := metav1.NewTime(t)
	return &mt
}

func durationOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.Duration
}

// campaignEvents returns a channel of reconcile events for the campaigns
// of one kind whose status the engine changed. A full channel drops the
// event: the campaign's next change or periodic requeue catches up.
func campaignEvents(e Engine, kind otav1.CampaignKind) <-chan event.GenericEvent {
	n := &campaignNotifier{kind: kind, ch: make(chan event.GenericEvent, 1024)}
	e.Notify(n, false)
	return n.ch
}

type campaignNotifier struct {
	kind otav1.CampaignKind
	ch   chan event.GenericEvent
}

func (n *campaignNotifier) CampaignChanged(namespace string, ref otav1.CampaignReference) {
	if ref.Kind != n.kind {
		return
	}
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(otav1.GroupVersion.String())
	u.SetKind(string(ref.Kind))
	u.SetNamespace(namespace)
	u.SetName(ref.Name)
	select {
	case n.ch <- event.GenericEvent{Object: u}:
	default:
	}
}

func (n *campaignNotifier) TaskChanged(fleet.DeviceTask) {}

// health is a resource's kstatus conditions, set together in one place:
// Ready, Reconciling and Stalled, with one reason and message. Flux, Argo
// CD and `kubectl wait` read them (test/kstatus checks what they make of
// every kind in every phase).
type health struct {
	ready, reconciling, stalled bool
	reason, message             string
}

func setHealth(conds *[]metav1.Condition, gen int64, h health) {
	setCondition(conds, gen, otav1.ConditionReady, h.ready, h.reason, h.message)
	setCondition(conds, gen, otav1.ConditionReconciling, h.reconciling, h.reason, h.message)
	setCondition(conds, gen, otav1.ConditionStalled, h.stalled, h.reason, h.message)
}
