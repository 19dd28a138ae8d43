package controllers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/fleet"
)

// VerificationRunReconciler runs VerificationRuns through the rollout
// engine. It reports each run's own result only: the Firmware controller
// computes the Firmware's verification from the runs it owns.
type VerificationRunReconciler struct {
	client.Client
	Engine   Engine
	Recorder events.EventRecorder
}

// +kubebuilder:rbac:groups=ota.otafleet.dev,resources=verificationruns,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=ota.otafleet.dev,resources=verificationruns/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=ota.otafleet.dev,resources=firmwares/finalizers,verbs=update

// Reconcile syncs one VerificationRun with the engine.
func (r *VerificationRunReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	cr := &campaignReconciler[*otav1.VerificationRun]{Client: r.Client, engine: r.Engine, kind: r,
		newObj: func() *otav1.VerificationRun { return &otav1.VerificationRun{} }}
	return cr.reconcile(ctx, req)
}

// SetupWithManager registers the reconciler.
func (r *VerificationRunReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return setupCampaign(mgr, r.Engine, &otav1.VerificationRun{}, &otav1.VerificationRunList{}, otav1.KindVerificationRun, r)
}

func (r *VerificationRunReconciler) ref(name string) otav1.CampaignReference { return runRef(name) }

func (r *VerificationRunReconciler) firmware(vr *otav1.VerificationRun) string {
	return vr.Spec.Firmware
}

func (r *VerificationRunReconciler) conditions(vr *otav1.VerificationRun) []metav1.Condition {
	return vr.Status.Conditions
}

func (r *VerificationRunReconciler) early(*otav1.VerificationRun, time.Time) bool { return false }

func (r *VerificationRunReconciler) forget(types.NamespacedName) {}

func (r *VerificationRunReconciler) setStatus(vr *otav1.VerificationRun, s fleet.Status) {
	setRunStatus(vr, s)
}

// announce records the run's end, right after the status write that made
// the transition, so that neither a failed Firmware update nor a repeat
// reconcile from a stale cache (its patch conflicts) can drop or repeat it.
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
	vr.Status.ObservedGeneration = vr.Generation
	reason, stalled := waitReason(err)
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
	setHealth(&vr.Status.Conditions, vr.Generation, health{reconciling: !stalled, stalled: stalled, reason: reason, message: err.Error()})
}

func runRef(name string) otav1.CampaignReference {
	return otav1.CampaignReference{Kind: otav1.KindVerificationRun, Name: name}
}

func waitReason(err error) (reason string, stalled bool) {
	var w *waitError
	if errors.As(err, &w) {
		return w.reason, w.stalled
	}
	return otav1.ReasonProgressing, false
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

// inputs refuses a run made for an earlier Firmware of the same name, and
// names what the run's spec is built from.
func (r *VerificationRunReconciler) inputs(_ context.Context, vr *otav1.VerificationRun, fw *otav1.Firmware, pk string) (string, error) {
	if !ownedBy(vr, fw.UID) || (vr.Status.SHA256 != "" && vr.Status.SHA256 != fw.Status.Artifact.SHA256) {
		return "", &waitError{reason: otav1.ReasonFirmwareReplaced, stalled: true, cancel: true,
			message: fmt.Sprintf("Firmware %q is not the one this run was made for (it was deleted and created again); "+
				"create a new VerificationRun", fw.Name)}
	}
	if _, err := parseWindows(vr.Spec.MaintenanceWindows); err != nil {
		return "", err
	}
	vr.Status.SHA256 = fw.Status.Artifact.SHA256
	return strconv.FormatInt(vr.Generation, 10) + "/" + firmwareInputs(fw) + "/" + pk + "/" +
		strconv.FormatBool(runSelected(vr)), nil
}

// runSelected: a run past Pending recorded its selection (at most 10
// devices: one slice, written at once).
func runSelected(vr *otav1.VerificationRun) bool {
	return vr.Status.Phase != "" && vr.Status.Phase != otav1.RunPending
}

func (r *VerificationRunReconciler) spec(_ context.Context, vr *otav1.VerificationRun, fw *otav1.Firmware, pk string) (fleet.Spec, error) {
	s := fleet.Spec{
		Ref: runRef(vr.Name), Namespace: vr.Namespace, UID: vr.UID, ProductKey: pk,
		Module: fw.Spec.Module, Target: fw.Spec.Version, Image: imageOf(fw, nil),
		Verification: true, Devices: vr.Spec.Devices, SourceVersions: vr.Spec.SourceVersions,
		RatePerMinute: 10000, Timeout: durationOr(vr.Spec.Timeout, time.Hour),
		Confirm: vr.Spec.ConfirmationRequired, Cancel: vr.Spec.Cancel, MaxPushes: vr.Spec.MaxPushes,
		SelectionComplete: runSelected(vr),
	}
	if fw.Spec.Diff {
		s.SourceVersions = []string{fw.Spec.DiffSourceVersion}
	}
	windows, err := parseWindows(vr.Spec.MaintenanceWindows)
	s.Windows = windows
	return s, err
}

func isFinal(p otav1.RunPhase) bool {
	return p == otav1.RunSucceeded || p == otav1.RunFailed || p == otav1.RunCanceled
}

func setRunStatus(vr *otav1.VerificationRun, s fleet.Status) {
	st := &vr.Status
	st.ObservedGeneration = vr.Generation
	st.Counts, st.Devices, st.Window = s.Counts, s.Devices, windowStatus(s)
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
	setHealth(&st.Conditions, gen, runHealth(st.Phase, s))
}

// runHealth is a run's conditions in its phase. A failed or canceled run
// is Stalled: otherwise kstatus reads its Ready=False as still in
// progress, and a GitOps wait on it would never end.
func runHealth(phase otav1.RunPhase, s fleet.Status) health {
	switch phase {
	case otav1.RunSucceeded:
		return health{ready: true, reason: otav1.ReasonSucceeded, message: fmt.Sprintf("all %d devices upgraded", s.Counts.Total)}
	case otav1.RunFailed:
		reason := otav1.ReasonFailed
		if !imageTried(s.Devices) {
			// Busy, unknown or canceled devices say nothing about the
			// image: the Firmware stays as it was.
			reason = otav1.ReasonInconclusive
		}
		return health{stalled: true, reason: reason, message: failedDevices(s.Devices)}
	case otav1.RunCanceled:
		return health{stalled: true, reason: otav1.ReasonCanceled, message: "canceled"}
	}
	if msg := waitingForWindow(s); msg != "" {
		return health{reconciling: true, reason: otav1.ReasonOutsideWindow, message: msg}
	}
	return health{reconciling: true, reason: otav1.ReasonProgressing,
		message: fmt.Sprintf("%d of %d devices upgraded", s.Counts.Succeeded, s.Counts.Total)}
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
