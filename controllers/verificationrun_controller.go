package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/fleet"
)

// VerificationRunReconciler runs VerificationRuns through the rollout
// engine. It reports each run's own result only: the Firmware controller
// computes the Firmware's verification from the runs it owns.
type VerificationRunReconciler struct {
	client.Client
	Engine   *fleet.Engine
	Recorder events.EventRecorder
}

// +kubebuilder:rbac:groups=ota.otafleet.dev,resources=verificationruns,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=ota.otafleet.dev,resources=verificationruns/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=ota.otafleet.dev,resources=firmwares/finalizers,verbs=update

// Reconcile syncs one VerificationRun with the engine.
func (r *VerificationRunReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	vr := &otav1.VerificationRun{}
	if err := r.Get(ctx, req.NamespacedName, vr); err != nil {
		if apierrors.IsNotFound(err) {
			r.Engine.Remove(req.Namespace, runRef(req.Name))
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !vr.DeletionTimestamp.IsZero() {
		r.Engine.Remove(vr.Namespace, runRef(vr.Name))
		return ctrl.Result{}, nil
	}
	if endedForProduct(vr.Status.Conditions) {
		return ctrl.Result{}, nil
	}
	if err := r.adopt(ctx, vr); err != nil {
		return ctrl.Result{}, err
	}
	orig := vr.DeepCopy()
	st, err := r.sync(ctx, vr)
	if requeue, ok := requeueFor(err); ok {
		r.setWaiting(vr, err)
		return ctrl.Result{RequeueAfter: requeue}, r.patchStatus(ctx, orig, vr)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	setRunStatus(vr, st)
	if err := r.patchStatus(ctx, orig, vr); err != nil {
		return ctrl.Result{}, err
	}
	// Announced right after the status write that made the transition, so
	// that neither a failed Firmware update below nor a repeat reconcile
	// from a stale cache (its patch conflicts) can drop or repeat it.
	if vr.Status.Phase != orig.Status.Phase && r.Recorder != nil && isFinal(vr.Status.Phase) {
		kind := corev1.EventTypeNormal
		if vr.Status.Phase == otav1.RunFailed {
			kind = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(vr, nil, kind, "Verification"+string(vr.Status.Phase), "Verify", "Verification %s: %s",
			strings.ToLower(string(vr.Status.Phase)), conditionText(vr.Status.Conditions))
	}
	return ctrl.Result{RequeueAfter: st.NextCheck}, nil
}

func (r *VerificationRunReconciler) announce(orig, vr *otav1.VerificationRun) {
	if vr.Status.Phase == orig.Status.Phase || r.Recorder == nil || !isFinal(vr.Status.Phase) {
		return
	}
	kind := corev1.EventTypeNormal
	if vr.Status.Phase == otav1.RunFailed {
		kind = corev1.EventTypeWarning
	}
	r.Recorder.Eventf(vr, nil, kind, "Verification"+string(vr.Status.Phase), "Verify", "Verification %s: %s",
		strings.ToLower(string(vr.Status.Phase)), conditionText(vr.Status.Conditions))
}

// setWaiting records why the run does not go on. The engine holds the run
// meanwhile (paused, or canceled for a deleted Product).
func (r *VerificationRunReconciler) setWaiting(vr *otav1.VerificationRun, err error) {
	st, inEngine := holdCampaign(r.Engine, vr.Namespace, runRef(vr.Name), err)
	if inEngine {
		setRunStatus(vr, st)
	}
	vr.Status.ObservedGeneration = vr.Generation
	reason := waitReason(err)
	switch {
	case reason == otav1.ReasonProductDeleted || reason == otav1.ReasonFirmwareReplaced:
		if !isFinal(vr.Status.Phase) {
			vr.Status.Phase = otav1.RunCanceled
		}
		if vr.Status.CompletionTime == nil {
			now := metav1.Now()
			vr.Status.CompletionTime = &now
		}
	case vr.Status.Phase == "":
		vr.Status.Phase = otav1.RunPending
	}
	setCondition(&vr.Status.Conditions, vr.Generation, otav1.ConditionReady, false, reason, err.Error())
}

func runRef(name string) otav1.CampaignReference {
	return otav1.CampaignReference{Kind: otav1.KindVerificationRun, Name: name}
}

func waitReason(err error) string {
	if w, ok := err.(*waitError); ok {
		return w.reason
	}
	return otav1.ReasonProgressing
}

// adopt makes the run's Firmware its owner, so that the run is deleted with
// it and can never vouch for a Firmware recreated under the same name. A
// run older than its Firmware was made for an earlier one: it is not
// adopted, and sync refuses it.
func (r *VerificationRunReconciler) adopt(ctx context.Context, vr *otav1.VerificationRun) error {
	if len(vr.OwnerReferences) > 0 {
		return nil
	}
	fw := &otav1.Firmware{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: vr.Namespace, Name: vr.Spec.Firmware}, fw); err != nil {
		return client.IgnoreNotFound(err)
	}
	if vr.CreationTimestamp.Before(&fw.CreationTimestamp) {
		return nil
	}
	if err := controllerutil.SetControllerReference(fw, vr, r.Scheme()); err != nil {
		return err
	}
	return r.Update(ctx, vr)
}

func (r *VerificationRunReconciler) sync(ctx context.Context, vr *otav1.VerificationRun) (fleet.Status, error) {
	fw, pk, err := resolveFirmware(ctx, r.Client, r.Engine, vr.Namespace, vr.Spec.Firmware)
	if err != nil {
		return fleet.Status{}, err
	}
	if !ownedBy(vr, fw.UID) || (vr.Status.SHA256 != "" && vr.Status.SHA256 != fw.Status.Artifact.SHA256) {
		return fleet.Status{}, &waitError{reason: otav1.ReasonFirmwareReplaced, stalled: true, cancel: true,
			message: fmt.Sprintf("Firmware %q is not the one this run was made for (it was deleted and created again); "+
				"create a new VerificationRun", fw.Name)}
	}
	vr.Status.SHA256 = fw.Status.Artifact.SHA256
	s := fleet.Spec{
		Ref: runRef(vr.Name), Namespace: vr.Namespace, UID: vr.UID, ProductKey: pk,
		Module: fw.Spec.Module, Target: fw.Spec.Version, Image: imageOf(fw, nil),
		Verification: true, Devices: vr.Spec.Devices, SourceVersions: vr.Spec.SourceVersions,
		RatePerMinute: 10000, Timeout: durationOr(vr.Spec.Timeout, time.Hour),
		Confirm: vr.Spec.ConfirmationRequired, Cancel: vr.Spec.Cancel, MaxPushes: vr.Spec.MaxPushes,
		// At most 10 devices: one slice, written at once.
		SelectionComplete: vr.Status.Phase != "" && vr.Status.Phase != otav1.RunPending,
	}
	if fw.Spec.Diff {
		s.SourceVersions = []string{fw.Spec.DiffSourceVersion}
	}
	return r.Engine.Upsert(s)
}

func isFinal(p otav1.RunPhase) bool {
	return p == otav1.RunSucceeded || p == otav1.RunFailed || p == otav1.RunCanceled
}

func setRunStatus(vr *otav1.VerificationRun, s fleet.Status) {
	st := &vr.Status
	st.ObservedGeneration = vr.Generation
	st.Counts, st.Devices = s.Counts, s.Devices
	if st.StartTime == nil {
		st.StartTime = timePtr(s.StartTime)
	}
	gen := vr.Generation
	switch s.Phase {
	case otav1.BatchPlanned:
		st.Phase = otav1.RunPending
	case otav1.BatchCanceled:
		st.Phase = otav1.RunCanceled
	case otav1.BatchCompleted:
		st.Phase = otav1.RunSucceeded
		if s.Counts.Total == 0 || s.Counts.Succeeded != s.Counts.Total {
			st.Phase = otav1.RunFailed
		}
	default:
		st.Phase = otav1.RunRunning
	}
	if isFinal(st.Phase) && st.CompletionTime == nil {
		now := metav1.Now()
		st.CompletionTime = &now
	}
	switch st.Phase {
	case otav1.RunSucceeded:
		setCondition(&st.Conditions, gen, otav1.ConditionReady, true, otav1.ReasonSucceeded,
			fmt.Sprintf("all %d devices upgraded", s.Counts.Total))
	case otav1.RunFailed:
		reason := otav1.ReasonFailed
		if !imageTried(s.Devices) {
			// Busy, unknown or canceled devices say nothing about the
			// image: the Firmware stays as it was.
			reason = otav1.ReasonInconclusive
		}
		setCondition(&st.Conditions, gen, otav1.ConditionReady, false, reason, failedDevices(s.Devices))
	case otav1.RunCanceled:
		setCondition(&st.Conditions, gen, otav1.ConditionReady, false, otav1.ReasonCanceled, "canceled")
	default:
		setCondition(&st.Conditions, gen, otav1.ConditionReady, false, otav1.ReasonProgressing,
			fmt.Sprintf("%d of %d devices upgraded", s.Counts.Succeeded, s.Counts.Total))
	}
	// Without Stalled, kstatus reads a finished run's Ready=False as still
	// in progress, and a GitOps wait on a failed run would never end.
	ready := apimeta.FindStatusCondition(st.Conditions, otav1.ConditionReady)
	setCondition(&st.Conditions, gen, otav1.ConditionStalled,
		st.Phase == otav1.RunFailed || st.Phase == otav1.RunCanceled, ready.Reason, ready.Message)
}

// imageTried reports whether a device that did not succeed failed because
// of the image: it took the push and failed a step or timed out. A device
// held by another campaign, unknown, on an unexpected version or canceled
// never ran the image.
func imageTried(ds []otav1.DeviceResult) bool {
	for _, d := range ds {
		switch {
		case d.State == otav1.TaskTimedOut:
			return true
		case d.State != otav1.TaskFailed:
			continue
		}
		switch d.Reason {
		case otav1.FailureUpgrade, otav1.FailureDownload, otav1.FailureVerification, otav1.FailureFlash,
			otav1.FailureTimeout:
			return true
		}
	}
	return false
}

// failedDevices says which devices failed and why, for the condition and
// the Firmware's verification message.
func failedDevices(ds []otav1.DeviceResult) string {
	var parts []string
	for _, d := range ds {
		if d.State != otav1.TaskSucceeded {
			part := d.Name + ": " + string(d.State)
			if d.Reason != "" {
				part += " " + d.Reason
			}
			if d.Message != "" {
				part += " (" + d.Message + ")"
			}
			parts = append(parts, part)
		}
	}
	msg := "verification failed on " + strings.Join(parts, "; ")
	return truncateText(msg, 1024)
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

func conditionText(conds []metav1.Condition) string {
	for _, c := range conds {
		if c.Type == otav1.ConditionReady {
			return c.Message
		}
	}
	return ""
}

func (r *VerificationRunReconciler) patchStatus(ctx context.Context, orig, vr *otav1.VerificationRun) error {
	if equality.Semantic.DeepEqual(orig.Status, vr.Status) {
		return nil
	}
	// Guarded like the UpgradeBatch's: a stale cached copy must not hide
	// counters that went back to zero.
	return client.IgnoreNotFound(r.Status().Patch(ctx, vr, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})))
}

// SetupWithManager registers the reconciler.
func (r *VerificationRunReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := indexCampaignFirmware(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		// Spec changes only: the engine's events cover progress, and a
		// reconcile per status patch would write status at API speed.
		For(&otav1.VerificationRun{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named("verificationrun").
		WatchesRawSource(source.Channel(r.Engine.RunEvents, &handler.EnqueueRequestForObject{})).
		Watches(&otav1.Firmware{}, handler.EnqueueRequestsFromMapFunc(r.runsOf)).
		Complete(r)
}

func (r *VerificationRunReconciler) runsOf(ctx context.Context, fw client.Object) []reconcile.Request {
	return campaignsOf(ctx, r.Client, &otav1.VerificationRunList{}, fw)
}
