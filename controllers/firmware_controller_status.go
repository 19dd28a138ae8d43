package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// Reasons the Firmware controller uses beyond those in api/v1alpha1.
const (
	ReasonDownloadFailed       = "DownloadFailed"
	ReasonSourceNotFound       = "SourceNotFound"
	ReasonPublicKeyUnavailable = "PublicKeyUnavailable"
	ReasonImageTooLarge        = "ImageTooLarge"
	// ReasonSourceUnusable: the url source cannot be fetched as given, for
	// example because its server does not state the size.
	ReasonSourceUnusable = "SourceUnusable"
	// ReasonVerifying and ReasonVerificationFailed report the image's
	// verification in Reconciling and Stalled.
	ReasonVerifying          = "Verifying"
	ReasonVerificationFailed = "VerificationFailed"
)

// firmwareScope is what the steps of one reconcile share.
type firmwareScope struct {
	fw   *otav1.Firmware
	base *otav1.Firmware
	// product is the Firmware's Product, nil when missing.
	product *otav1.Product
	// notReady is the first reason the Firmware cannot be Ready.
	notReady *outcome
	// halt stops the remaining steps: they need what is missing.
	halt bool
	// requeue is the earliest time something is expected to change.
	requeue time.Duration
	// activeCampaigns names the unfinished campaigns using the image.
	activeCampaigns []string
	// gone is set once the finalizer is removed: nothing left to patch.
	gone bool
	// events wait for the status patch: a transition is announced only
	// once it is recorded, so that a reconcile whose patch conflicts (and
	// runs again from a copy without the new condition) does not announce
	// it a second time. The InUse event came 11 times in 12 s that way.
	events []pendingEvent
}

type pendingEvent struct{ eventType, reason, message string }

func (s *firmwareScope) emit(eventType, reason, message string) {
	s.events = append(s.events, pendingEvent{eventType, reason, message})
}

type outcome struct {
	reason, message string
	// stalled: a human must change something before progress is possible.
	stalled bool
}

func newFirmwareScope(fw *otav1.Firmware) *firmwareScope {
	return &firmwareScope{fw: fw, base: fw.DeepCopy()}
}

// rebase makes the current object the base of the status patch, after a
// metadata update returned a new resourceVersion.
func (s *firmwareScope) rebase() { s.base = s.fw.DeepCopy() }

func (s *firmwareScope) statusChanged() bool {
	return !equality.Semantic.DeepEqual(s.base.Status, s.fw.Status)
}

// block records why the Firmware is not Ready. The first reason wins,
// except that a reason needing a human beats one that heals by itself.
func (s *firmwareScope) block(reason, message string, stalled bool) {
	if s.notReady == nil || (stalled && !s.notReady.stalled) {
		s.notReady = &outcome{reason: reason, message: message, stalled: stalled}
	}
}

// stall blocks for a reason only a human can fix and stops the steps.
func (s *firmwareScope) stall(reason, message string) {
	s.block(reason, message, true)
	s.halt = true
}

// wait blocks for something expected to happen by itself, checked again
// after d, and stops the steps.
func (s *firmwareScope) wait(reason, message string, d time.Duration) {
	s.block(reason, message, false)
	s.requeueIn(d)
	s.halt = true
}

func (s *firmwareScope) setStorageError(message string) {
	s.block(otav1.ReasonStorageError, "Object storage: "+message, false)
	s.halt = true
}

func (s *firmwareScope) requeueIn(d time.Duration) {
	if d > 0 && (s.requeue == 0 || d < s.requeue) {
		s.requeue = d
	}
}

func (s *firmwareScope) requeueAfter(resync time.Duration) time.Duration {
	if s.requeue > 0 {
		return s.requeue
	}
	return resync
}

// stalledAtGeneration reports whether the Firmware was already refused for
// reason at its current spec; refetching the same immutable source would
// only refuse it again.
func (s *firmwareScope) stalledAtGeneration(reason string) *metav1.Condition {
	c := apimeta.FindStatusCondition(s.fw.Status.Conditions, otav1.ConditionStalled)
	if c != nil && c.Status == metav1.ConditionTrue && c.Reason == reason && c.ObservedGeneration == s.fw.Generation {
		return c
	}
	return nil
}

// summarize computes Ready, Reconciling and Stalled from the steps'
// outcome, and emits events for the transitions people care about.
func (r *FirmwareReconciler) summarize(ctx context.Context, s *firmwareScope) {
	fw := s.fw
	wasReady := apimeta.IsStatusConditionTrue(s.base.Status.Conditions, otav1.ConditionReady)
	wasStalled := apimeta.FindStatusCondition(s.base.Status.Conditions, otav1.ConditionStalled)
	fw.Status.ObservedGeneration = fw.Generation
	set := func(t string, st metav1.ConditionStatus, reason, msg string) {
		apimeta.SetStatusCondition(&fw.Status.Conditions, metav1.Condition{
			Type: t, Status: st, Reason: reason, Message: msg, ObservedGeneration: fw.Generation})
	}
	switch o := s.notReady; {
	case o != nil && o.stalled:
		set(otav1.ConditionReady, metav1.ConditionFalse, o.reason, o.message)
		set(otav1.ConditionStalled, metav1.ConditionTrue, o.reason, o.message)
		apimeta.RemoveStatusCondition(&fw.Status.Conditions, otav1.ConditionReconciling)
		if wasStalled == nil || wasStalled.Status != metav1.ConditionTrue || wasStalled.Reason != o.reason {
			s.emit(corev1.EventTypeWarning, o.reason, o.message)
		}
	case o != nil:
		set(otav1.ConditionReady, metav1.ConditionFalse, o.reason, o.message)
		set(otav1.ConditionReconciling, metav1.ConditionTrue, o.reason, o.message)
		apimeta.RemoveStatusCondition(&fw.Status.Conditions, otav1.ConditionStalled)
	default:
		reason, msg := r.readyMessage(ctx, fw)
		set(otav1.ConditionReady, metav1.ConditionTrue, reason, msg)
		apimeta.RemoveStatusCondition(&fw.Status.Conditions, otav1.ConditionReconciling)
		apimeta.RemoveStatusCondition(&fw.Status.Conditions, otav1.ConditionStalled)
		summarizeVerification(fw, set)
		if !wasReady {
			s.emit(corev1.EventTypeNormal, otav1.ReasonSucceeded, msg)
		}
	}
}

// summarizeVerification shows a verification in Reconciling and Stalled,
// so that kstatus and Argo CD see an image under test as in progress and a
// failed one as failed. Ready stays True: a stored image can be verified
// again by a new VerificationRun.
func summarizeVerification(fw *otav1.Firmware, set func(t string, st metav1.ConditionStatus, reason, msg string)) {
	switch v := fw.Status.Verification; v.State {
	case otav1.VerificationVerifying:
		set(otav1.ConditionReconciling, metav1.ConditionTrue, ReasonVerifying,
			fmt.Sprintf("VerificationRun %q is trying the image on test devices", v.Run))
	case otav1.VerificationFailed:
		set(otav1.ConditionStalled, metav1.ConditionTrue, ReasonVerificationFailed,
			fmt.Sprintf("VerificationRun %q failed: %s", v.Run, v.Message))
	}
}

func (r *FirmwareReconciler) readyMessage(ctx context.Context, fw *otav1.Firmware) (string, string) {
	a := fw.Status.Artifact
	msg := fmt.Sprintf("Image stored and checked: %d bytes, sha256 %s", a.Size, a.SHA256)
	if fw.Spec.Signature != nil {
		msg += ", Ed25519 signature valid"
	}
	if w := r.Store.DevicePortWarning(); w != "" {
		// Ready, because newer SDKs and the simulator honour ports, but
		// said where people look first.
		log.FromContext(ctx).Info("Firmware is Ready but devices on the vendor SDK cannot download it", "warning", w)
		return otav1.ReasonNonDefaultPort, msg + "; WARNING: " + w
	}
	return otav1.ReasonSucceeded, msg
}

// holdDeletion says why a deleted Firmware is still there. Ready is left
// alone: the campaigns holding it keep pushing the image.
func (r *FirmwareReconciler) holdDeletion(ctx context.Context, s *firmwareScope) {
	fw := s.fw
	msg := fmt.Sprintf("Deletion waits until %d active campaign(s) using the image finish: %s",
		len(s.activeCampaigns), strings.Join(s.activeCampaigns, ", "))
	prev := apimeta.FindStatusCondition(fw.Status.Conditions, otav1.ConditionReconciling)
	apimeta.SetStatusCondition(&fw.Status.Conditions, metav1.Condition{
		Type: otav1.ConditionReconciling, Status: metav1.ConditionTrue, Reason: otav1.ReasonInUse,
		Message: msg, ObservedGeneration: fw.Generation})
	if prev == nil || prev.Reason != otav1.ReasonInUse {
		log.FromContext(ctx).Info("Deletion held while campaigns use the image", "campaigns", s.activeCampaigns)
		s.emit(corev1.EventTypeNormal, otav1.ReasonInUse, msg)
	}
}

// flushEvents announces the transitions of a reconcile whose status was
// written.
func (r *FirmwareReconciler) flushEvents(s *firmwareScope) {
	for _, ev := range s.events {
		r.event(s.fw, ev.eventType, ev.reason, ev.message)
	}
	s.events = nil
}

func (r *FirmwareReconciler) event(fw *otav1.Firmware, eventType, reason, msg string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(fw, nil, eventType, reason, "Reconcile", "%s", msg)
	}
}
