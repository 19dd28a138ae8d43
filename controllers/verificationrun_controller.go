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
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/fleet"
)

// VerificationRunReconciler runs VerificationRuns through the rollout
// engine and sets their Firmware's verification state from the result.
type VerificationRunReconciler struct {
	client.Client
	Engine   *fleet.Engine
	Recorder events.EventRecorder
}

// +kubebuilder:rbac:groups=ota.otafleet.dev,resources=verificationruns,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=ota.otafleet.dev,resources=verificationruns/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=ota.otafleet.dev,resources=firmwares/status,verbs=get;update;patch

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
	orig := vr.DeepCopy()
	st, err := r.sync(ctx, vr)
	if requeue, ok := requeueFor(err); ok {
		vr.Status.ObservedGeneration = vr.Generation
		if vr.Status.Phase == "" {
			vr.Status.Phase = otav1.RunPending
		}
		setCondition(&vr.Status.Conditions, vr.Generation, otav1.ConditionReady, false, waitReason(err), err.Error())
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
	if err := r.recordVerification(ctx, vr); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: st.NextCheck}, nil
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

func (r *VerificationRunReconciler) sync(ctx context.Context, vr *otav1.VerificationRun) (fleet.Status, error) {
	fw, pk, err := resolveFirmware(ctx, r.Client, r.Engine, vr.Namespace, vr.Spec.Firmware)
	if err != nil {
		return fleet.Status{}, err
	}
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
		setCondition(&st.Conditions, gen, otav1.ConditionReady, false, otav1.ReasonFailed, failedDevices(s.Devices))
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

// recordVerification sets the Firmware's verification state from the run.
func (r *VerificationRunReconciler) recordVerification(ctx context.Context, vr *otav1.VerificationRun) error {
	var want otav1.Verification
	switch vr.Status.Phase {
	case otav1.RunRunning:
		want = otav1.Verification{State: otav1.VerificationVerifying}
	case otav1.RunSucceeded:
		want = otav1.Verification{State: otav1.VerificationVerified, Message: conditionText(vr.Status.Conditions)}
	case otav1.RunFailed:
		want = otav1.Verification{State: otav1.VerificationFailed, Message: conditionText(vr.Status.Conditions)}
	default:
		return nil
	}
	fw := &otav1.Firmware{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: vr.Namespace, Name: vr.Spec.Firmware}, fw); err != nil {
		return client.IgnoreNotFound(err)
	}
	cur := fw.Status.Verification
	if cur.State == want.State && cur.Run == vr.Name {
		return nil
	}
	// A verified image stays verified: a later failing run on other
	// devices is reported by that run, not by un-verifying the image.
	if cur.State == otav1.VerificationVerified && cur.Run != vr.Name {
		return nil
	}
	orig := fw.DeepCopy()
	now := metav1.Now()
	want.Run, want.Time = vr.Name, &now
	fw.Status.Verification = want
	return client.IgnoreNotFound(r.Status().Patch(ctx, fw, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})))
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
