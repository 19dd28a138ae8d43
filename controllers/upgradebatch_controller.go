package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/fleet"
)

// UpgradeBatchReconciler hands UpgradeBatches to the rollout engine and
// writes the engine's progress into their status.
type UpgradeBatchReconciler struct {
	client.Client
	Engine   *fleet.Engine
	Recorder events.EventRecorder
	// Objects reads device lists kept in object storage; Bucket is the
	// operator's bucket, used when a list names none.
	Objects ObjectReader
	Bucket  string
	// SharedObjectPrefixes are "bucket/prefix" entries every namespace may
	// read device lists from, set by an admin (see objectOutside).
	SharedObjectPrefixes []string

	lists listCache
}

// +kubebuilder:rbac:groups=ota.otafleet.dev,resources=upgradebatches,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=ota.otafleet.dev,resources=upgradebatches/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=ota.otafleet.dev,resources=upgradeslices;deviceslices,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=ota.otafleet.dev,resources=firmwares;products,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile syncs one UpgradeBatch with the engine.
func (r *UpgradeBatchReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ub := &otav1.UpgradeBatch{}
	if err := r.Get(ctx, req.NamespacedName, ub); err != nil {
		if apierrors.IsNotFound(err) {
			r.Engine.Remove(req.Namespace, batchRef(req.Name))
			r.lists.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !ub.DeletionTimestamp.IsZero() {
		r.Engine.Remove(ub.Namespace, batchRef(ub.Name))
		r.lists.forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	if endedForProduct(ub.Status.Conditions) {
		return ctrl.Result{}, nil
	}
	orig := ub.DeepCopy()
	if msg := missedSchedule(ub, time.Now()); msg != "" {
		setScheduleEnded(ub, msg, time.Now())
		return ctrl.Result{}, r.patchStatus(ctx, orig, ub)
	}
	clearScheduleEnded(ub)
	st, err := r.sync(ctx, ub)
	if requeue, ok := requeueFor(err); ok {
		r.setWaiting(ub, err)
		return ctrl.Result{RequeueAfter: requeue}, r.patchStatus(ctx, orig, ub)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	r.setStatus(ub, st)
	return ctrl.Result{RequeueAfter: st.NextCheck}, r.patchStatus(ctx, orig, ub)
}

func batchRef(name string) otav1.CampaignReference {
	return otav1.CampaignReference{Kind: otav1.KindUpgradeBatch, Name: name}
}

// sync builds the engine's spec from the batch and its Firmware.
func (r *UpgradeBatchReconciler) sync(ctx context.Context, ub *otav1.UpgradeBatch) (fleet.Status, error) {
	fw, pk, err := resolveFirmware(ctx, r.Client, r.Engine, ub.Namespace, ub.Spec.Firmware)
	if err != nil {
		return fleet.Status{}, err
	}
	if err := verificationWait(fw); err != nil {
		return fleet.Status{}, err
	}
	devices, err := r.deviceList(ctx, ub)
	if err != nil {
		return fleet.Status{}, err
	}
	return r.Engine.Upsert(batchSpec(ub, fw, pk, devices))
}

// verificationWait holds a batch until its Firmware is verified, if it must
// be. A verification under way ends by itself, so GitOps tools see the batch
// in progress; an unverified or failed image needs a human.
func verificationWait(fw *otav1.Firmware) error {
	state := fw.Status.Verification.State
	if !fw.NeedsVerification() || imageVerified(fw) {
		return nil
	}
	return &waitError{reason: otav1.ReasonFirmwareUnverified, stalled: state != otav1.VerificationVerifying,
		message: fmt.Sprintf("Firmware %q must be verified by a VerificationRun first (verification: %s)",
			fw.Name, verificationText(fw))}
}

func orUnverified(s otav1.VerificationState) otav1.VerificationState {
	if s == "" {
		return otav1.VerificationUnverified
	}
	return s
}

func batchSpec(ub *otav1.UpgradeBatch, fw *otav1.Firmware, pk string, devices []string) fleet.Spec {
	s := fleet.Spec{
		Ref: batchRef(ub.Name), Namespace: ub.Namespace, UID: ub.UID, ProductKey: pk,
		Module: fw.Spec.Module, Target: fw.Spec.Version, Image: imageOf(fw, ub.Spec.Tags),
		Dynamic: ub.Spec.Type == otav1.BatchDynamic, Devices: devices,
		SourceVersions: ub.Spec.SourceVersions, RatePerMinute: ub.Spec.RatePerMinute,
		Waves: ub.Spec.Waves, PromotedWaves: ub.Spec.PromotedWaves, Abort: ub.Spec.Abort,
		Timeout: durationOr(ub.Spec.Timeout, time.Hour), Confirm: ub.Spec.ConfirmationRequired,
		Overwrite: ub.Spec.Overwrite, Paused: ub.Spec.Paused, MaxPushes: ub.Spec.MaxPushes,
		SelectionComplete: ub.Status.SelectionComplete,
	}
	if ub.Spec.Scope.Type == otav1.ScopeGray {
		s.GrayPercent = ub.Spec.Scope.GrayPercent
	}
	if fw.Spec.Diff {
		s.SourceVersions = []string{fw.Spec.DiffSourceVersion}
	}
	if rp := ub.Spec.Retry; rp != nil {
		s.RetryCount, s.RetryInterval, s.RetryTimedOut = rp.Count, durationOr(rp.Interval, 10*time.Minute), rp.TimedOut
	}
	if sch := ub.Spec.Schedule; sch != nil {
		if sch.Start != nil {
			s.Start = sch.Start.Time
		}
		if sch.End != nil {
			s.End = sch.End.Time
		}
	}
	if c := ub.Spec.Cancel; c != nil {
		s.Cancel, s.CancelStates = true, c.States
	}
	return s
}

// deviceList returns the names of a List scope, nil for other scopes.
func (r *UpgradeBatchReconciler) deviceList(ctx context.Context, ub *otav1.UpgradeBatch) ([]string, error) {
	sc := ub.Spec.Scope
	if sc.Type != otav1.ScopeList {
		return nil, nil
	}
	if sc.DevicesFrom == nil {
		return sc.Devices, nil
	}
	if obj := sc.DevicesFrom.Object; obj != nil {
		return r.objectList(ctx, ub, obj)
	}
	ref := sc.DevicesFrom.ConfigMapRef
	cm := &corev1.ConfigMap{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: ub.Namespace, Name: ref.Name}, cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &waitError{reason: otav1.ReasonInvalidSpec, message: fmt.Sprintf("ConfigMap %q not found", ref.Name)}
		}
		return nil, err
	}
	key := ref.Key
	if key == "" {
		key = "devices"
	}
	return parseDeviceList(cm.Data[key]), nil
}

// setWaiting records why the batch does not go on. The engine holds the
// batch meanwhile: paused, or canceled for good when its Product is being
// deleted.
func (r *UpgradeBatchReconciler) setWaiting(ub *otav1.UpgradeBatch, err error) {
	if es, inEngine := holdCampaign(r.Engine, ub.Namespace, batchRef(ub.Name), err); inEngine {
		r.setStatus(ub, es)
	}
	st := &ub.Status
	st.ObservedGeneration = ub.Generation
	reason, stalled := otav1.ReasonProgressing, false
	var w *waitError
	if errors.As(err, &w) {
		reason, stalled = w.reason, w.stalled
	}
	switch {
	case w != nil && w.cancel:
		st.Phase = otav1.BatchCanceled
		if st.CompletionTime == nil {
			now := metav1.Now()
			st.CompletionTime = &now
		}
	case st.Phase == "":
		st.Phase = otav1.BatchPlanned
	}
	setCondition(&st.Conditions, ub.Generation, otav1.ConditionReady, false, reason, err.Error())
	setCondition(&st.Conditions, ub.Generation, otav1.ConditionStalled, stalled, reason, err.Error())
	setCondition(&st.Conditions, ub.Generation, otav1.ConditionReconciling, !stalled, reason, err.Error())
}

func (r *UpgradeBatchReconciler) setStatus(ub *otav1.UpgradeBatch, s fleet.Status) {
	st := &ub.Status
	st.ObservedGeneration = ub.Generation
	st.Phase, st.Counts, st.CurrentWave, st.Waves = s.Phase, s.Counts, s.CurrentWave, s.Waves
	st.FailureReasons, st.Slices = s.Reasons, s.Slices
	// A static batch selects once; after a restart the engine's count is
	// gone, the status keeps it.
	st.UnknownDevices = max(st.UnknownDevices, s.UnknownDevices)
	st.SelectionComplete = st.SelectionComplete || s.SelectionComplete
	st.PausedUntil = timePtr(s.PausedUntil)
	if st.StartTime == nil {
		st.StartTime = timePtr(s.StartTime)
	}
	if st.CompletionTime == nil {
		st.CompletionTime = timePtr(s.CompletionTime)
	}
	gen := ub.Generation
	switch s.Phase {
	case otav1.BatchCompleted:
		reason, msg := completionMessage(ub, s.Counts)
		if ended, endMsg := scheduleEnded(ub, s); ended {
			// Not a success: the end cut the batch short.
			reason, msg = otav1.ReasonScheduleEnded, endMsg
		}
		if st.UnknownDevices > 0 {
			if reason == otav1.ReasonNothingSelected {
				reason = otav1.ReasonUnknownDevices
			}
			msg += unknownNote(st.UnknownDevices, s.UnknownExamples)
		}
		ok := reason == otav1.ReasonSucceeded
		setCondition(&st.Conditions, gen, otav1.ConditionReady, ok, reason, msg)
		setCondition(&st.Conditions, gen, otav1.ConditionReconciling, false, reason, msg)
		setCondition(&st.Conditions, gen, otav1.ConditionStalled, !ok && reason != otav1.ReasonScheduleEnded, reason, msg)
	case otav1.BatchAborted:
		setCondition(&st.Conditions, gen, otav1.ConditionReady, false, otav1.ReasonAborted, s.Aborted)
		setCondition(&st.Conditions, gen, otav1.ConditionReconciling, false, otav1.ReasonAborted, s.Aborted)
		setCondition(&st.Conditions, gen, otav1.ConditionStalled, true, otav1.ReasonAborted, s.Aborted)
	case otav1.BatchCanceled:
		setCondition(&st.Conditions, gen, otav1.ConditionReady, false, otav1.ReasonCanceled, "canceled")
		setCondition(&st.Conditions, gen, otav1.ConditionReconciling, false, otav1.ReasonCanceled, "canceled")
		// Stalled, so that kstatus calls it Failed: a canceled batch never
		// completes, and a GitOps wait on it must not hang.
		setCondition(&st.Conditions, gen, otav1.ConditionStalled, true, otav1.ReasonCanceled, "canceled")
	default:
		reason, msg := progressMessage(s)
		setCondition(&st.Conditions, gen, otav1.ConditionReady, false, reason, msg)
		setCondition(&st.Conditions, gen, otav1.ConditionReconciling, true, reason, msg)
		setCondition(&st.Conditions, gen, otav1.ConditionStalled, false, reason, msg)
	}
}

// completionMessage says how a completed batch ended. A batch that
// upgraded no device did not succeed, whatever its phase: it selected
// nothing (and the user should learn why) or every device failed.
func completionMessage(ub *otav1.UpgradeBatch, c otav1.TaskCounts) (string, string) {
	switch {
	case c.Total == 0:
		return otav1.ReasonNothingSelected, "no device matched: " + selectionText(ub)
	case c.Succeeded == 0:
		return otav1.ReasonNoDeviceUpgraded, fmt.Sprintf("none of %d devices upgraded: %d failed, %d timed out, %d canceled",
			c.Total, c.Failed, c.TimedOut, c.Canceled)
	}
	return otav1.ReasonSucceeded, fmt.Sprintf("%d of %d devices upgraded", c.Succeeded, c.Total)
}

// unknownNote tells that a List scope named devices the product does not
// know: a batch skips them, and a user must not read "3 of 3" as all.
func unknownNote(n int64, examples []string) string {
	text := fmt.Sprintf("; %d listed devices are unknown to the product and were skipped", n)
	if len(examples) > 0 {
		text += " (" + strings.Join(examples, ", ") + ")"
	}
	return text
}

// selectionText describes what a batch selects, for a user wondering why
// nothing matched.
func selectionText(ub *otav1.UpgradeBatch) string {
	sc := ub.Spec.Scope
	text := "scope " + string(sc.Type)
	if sc.Type == otav1.ScopeGray {
		text += fmt.Sprintf(" %d%%", sc.GrayPercent)
	}
	if len(ub.Spec.SourceVersions) > 0 {
		text += ", source versions " + strings.Join(ub.Spec.SourceVersions, ", ")
	}
	return text + "; devices already on the target version, or that never reported the module, are not selected"
}

// scheduleEnded reports whether the schedule's end stopped the batch before
// every selected device was upgraded, and says so.
func scheduleEnded(ub *otav1.UpgradeBatch, s fleet.Status) (bool, string) {
	sch := ub.Spec.Schedule
	if sch == nil || sch.End == nil || time.Now().Before(sch.End.Time) || s.Counts.Succeeded == s.Counts.Total {
		return false, ""
	}
	return true, fmt.Sprintf("Schedule ended at %s: %d of %d devices upgraded, %d canceled by the end, %d failed",
		sch.End.UTC().Format(time.RFC3339), s.Counts.Succeeded, s.Counts.Total, s.Counts.Canceled,
		s.Counts.Failed+s.Counts.TimedOut)
}

func progressMessage(s fleet.Status) (string, string) {
	switch {
	case s.Phase == otav1.BatchPlanned:
		return otav1.ReasonScheduled, "waiting for the schedule's start"
	case s.Held != "":
		return otav1.ReasonWavePaused, s.Held
	case s.Phase == otav1.BatchPaused:
		return otav1.ReasonPaused, "paused: no new pushes until spec.paused is false"
	}
	return otav1.ReasonProgressing, fmt.Sprintf("wave %d of %d: %d of %d devices finished",
		s.CurrentWave, s.Waves, s.Counts.Succeeded+s.Counts.Failed+s.Counts.TimedOut+s.Counts.Canceled, s.Counts.Total)
}

func (r *UpgradeBatchReconciler) patchStatus(ctx context.Context, orig, ub *otav1.UpgradeBatch) error {
	if equality.Semantic.DeepEqual(orig.Status, ub.Status) {
		return nil
	}
	// Guarded by the resourceVersion the status was computed from: a merge
	// patch against a stale cached copy would leave out counters that went
	// back to zero, and the server would keep their old values.
	if err := r.Status().Patch(ctx, ub, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		log.FromContext(ctx).V(1).Info("Status patch failed", "error", err.Error())
		return client.IgnoreNotFound(err)
	}
	announceBatch(r.Recorder, ub, orig.Status, ub.Status)
	return nil
}

// SetupWithManager registers the reconciler: it watches batches, the
// engine's progress events, and the Firmwares batches wait for.
func (r *UpgradeBatchReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := indexCampaignFirmware(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		// Spec changes only: the engine's events cover progress, and a
		// reconcile per status patch would write status at API speed.
		For(&otav1.UpgradeBatch{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named("upgradebatch").
		WatchesRawSource(source.Channel(r.Engine.BatchEvents, &handler.EnqueueRequestForObject{})).
		Watches(&otav1.Firmware{}, handler.EnqueueRequestsFromMapFunc(r.batchesOf)).
		Complete(r)
}

func (r *UpgradeBatchReconciler) batchesOf(ctx context.Context, fw client.Object) []reconcile.Request {
	return campaignsOf(ctx, r.Client, &otav1.UpgradeBatchList{}, fw)
}
