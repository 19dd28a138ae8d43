package controllers

import (
	"context"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/fleet"
)

// UpgradeBatchReconciler hands UpgradeBatches to the rollout engine and
// writes the engine's progress into their status. It is the UpgradeBatch
// kind of campaignReconciler.
type UpgradeBatchReconciler struct {
	client.Client
	Engine   Engine
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
	cr := &campaignReconciler[*otav1.UpgradeBatch]{Client: r.Client, engine: r.Engine, kind: r,
		newObj: func() *otav1.UpgradeBatch { return &otav1.UpgradeBatch{} }}
	return cr.reconcile(ctx, req)
}

// SetupWithManager registers the reconciler: it watches batches, the
// engine's progress events, and the Firmwares batches wait for.
func (r *UpgradeBatchReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return setupCampaign(mgr, r.Engine, &otav1.UpgradeBatch{}, &otav1.UpgradeBatchList{}, otav1.KindUpgradeBatch, r)
}

func batchRef(name string) otav1.CampaignReference {
	return otav1.CampaignReference{Kind: otav1.KindUpgradeBatch, Name: name}
}

func (r *UpgradeBatchReconciler) ref(name string) otav1.CampaignReference { return batchRef(name) }

func (r *UpgradeBatchReconciler) firmware(ub *otav1.UpgradeBatch) string { return ub.Spec.Firmware }

func (r *UpgradeBatchReconciler) conditions(ub *otav1.UpgradeBatch) []metav1.Condition {
	return ub.Status.Conditions
}

func (r *UpgradeBatchReconciler) adopt(context.Context, *otav1.UpgradeBatch) error { return nil }

func (r *UpgradeBatchReconciler) forget(nn types.NamespacedName) { r.lists.forget(nn) }

func (r *UpgradeBatchReconciler) announce(orig, ub *otav1.UpgradeBatch) {
	announceBatch(r.Recorder, ub, orig.Status, ub.Status)
}

// early ends a batch that missed its schedule; the engine never sees it.
func (r *UpgradeBatchReconciler) early(ub *otav1.UpgradeBatch, now time.Time) bool {
	if msg := missedSchedule(ub, now); msg != "" {
		setScheduleEnded(ub, msg, now)
		return true
	}
	clearScheduleEnded(ub)
	return false
}

// inputs holds a batch until its Firmware is verified, if it must be, and
// names what its spec is built from: the batch's generation, the Firmware
// and its image, the product, the recorded selection, and the version of
// a device list kept outside the batch.
func (r *UpgradeBatchReconciler) inputs(ctx context.Context, ub *otav1.UpgradeBatch, fw *otav1.Firmware, pk string) (string, error) {
	if err := verificationWait(fw); err != nil {
		return "", err
	}
	if _, err := parseWindows(ub.Spec.MaintenanceWindows); err != nil {
		return "", err
	}
	list, err := r.listVersion(ctx, ub)
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(ub.Generation, 10) + "/" + firmwareInputs(fw) + "/" + pk + "/" +
		strconv.FormatBool(ub.Status.SelectionComplete) + "/" + list, nil
}

// firmwareInputs names the Firmware and image a spec was built from.
func firmwareInputs(fw *otav1.Firmware) string {
	a := fw.Status.Artifact
	return fmt.Sprintf("%s/%d/%s/%s", fw.UID, fw.Generation, a.Key, a.SHA256)
}

// spec builds the engine's spec from the batch and its Firmware.
func (r *UpgradeBatchReconciler) spec(ctx context.Context, ub *otav1.UpgradeBatch, fw *otav1.Firmware, pk string) (fleet.Spec, error) {
	devices, err := r.deviceList(ctx, ub)
	if err != nil {
		return fleet.Spec{}, err
	}
	windows, err := parseWindows(ub.Spec.MaintenanceWindows)
	if err != nil {
		return fleet.Spec{}, err
	}
	s := batchSpec(ub, fw, pk, devices)
	s.Windows = windows
	return s, nil
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
		SelectionComplete: ub.Status.SelectionComplete, Soak: durationOr(ub.Spec.Soak, 0),
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

// listVersion names the version of a List scope's names kept outside the
// batch: a ConfigMap's resourceVersion or an object's ETag; "" otherwise
// (inline names change the batch's generation).
func (r *UpgradeBatchReconciler) listVersion(ctx context.Context, ub *otav1.UpgradeBatch) (string, error) {
	sc := ub.Spec.Scope
	switch {
	case sc.Type != otav1.ScopeList || sc.DevicesFrom == nil:
		return "", nil
	case sc.DevicesFrom.Object != nil:
		return r.objectVersion(ctx, ub, sc.DevicesFrom.Object)
	}
	cm, err := r.configMap(ctx, ub)
	if err != nil {
		return "", err
	}
	return cm.ResourceVersion, nil
}

// deviceList returns the names of a List scope, nil for other scopes.
func (r *UpgradeBatchReconciler) deviceList(ctx context.Context, ub *otav1.UpgradeBatch) ([]string, error) {
	sc := ub.Spec.Scope
	switch {
	case sc.Type != otav1.ScopeList:
		return nil, nil
	case sc.DevicesFrom == nil:
		return sc.Devices, nil
	case sc.DevicesFrom.Object != nil:
		etag, err := r.objectVersion(ctx, ub, sc.DevicesFrom.Object)
		if err != nil {
			return nil, err
		}
		return r.objectList(ctx, ub, sc.DevicesFrom.Object, etag)
	}
	cm, err := r.configMap(ctx, ub)
	if err != nil {
		return nil, err
	}
	key := sc.DevicesFrom.ConfigMapRef.Key
	if key == "" {
		key = "devices"
	}
	return parseDeviceList(cm.Data[key]), nil
}

func (r *UpgradeBatchReconciler) configMap(ctx context.Context, ub *otav1.UpgradeBatch) (*corev1.ConfigMap, error) {
	ref := ub.Spec.Scope.DevicesFrom.ConfigMapRef
	cm := &corev1.ConfigMap{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: ub.Namespace, Name: ref.Name}, cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &waitError{reason: otav1.ReasonInvalidSpec, message: fmt.Sprintf("ConfigMap %q not found", ref.Name)}
		}
		return nil, err
	}
	return cm, nil
}
