// Package controllers holds the otafleet reconcilers. Each one reads the
// desired state, compares it with what it observes (in the API server,
// object storage or the rollout engine), acts, and writes status once.
package controllers

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/storage"
)

// FirmwareFinalizer holds a Firmware until the image it stored is deleted
// and no active campaign uses it.
const FirmwareFinalizer = "ota.otafleet.dev/firmware-image"

// Defaults for zero FirmwareReconciler fields.
const (
	DefaultUploadURLExpiry    = 15 * time.Minute
	DefaultUploadPollInterval = 5 * time.Second
	DefaultMaxImageSize       = 4 << 30
	DefaultDownloadTimeout    = 30 * time.Minute
	defaultResyncInterval     = 10 * time.Minute
	// inUseRecheck bounds how long a held deletion waits when a campaign
	// finishes without an event reaching this controller.
	inUseRecheck = time.Minute
)

// FirmwareStore is the object storage the Firmware controller needs;
// *storage.MinIO implements it.
type FirmwareStore interface {
	EnsureBucket(ctx context.Context, bucket string) error
	Put(ctx context.Context, bucket, key string, r io.Reader, size int64, contentType string) (storage.ObjectInfo, error)
	Stat(ctx context.Context, bucket, key string) (storage.ObjectInfo, error)
	Get(ctx context.Context, bucket, key string) (io.ReadCloser, storage.ObjectInfo, error)
	Copy(ctx context.Context, srcBucket, srcKey, dstBucket, dstKey string) (storage.ObjectInfo, error)
	PresignPut(ctx context.Context, bucket, key string, expiry time.Duration) (*url.URL, error)
	Delete(ctx context.Context, bucket, key string) error
	// Sanitize turns an error into text safe for a condition.
	Sanitize(err error) string
	// DevicePortWarning is non-empty when devices on the vendor SDK cannot
	// download from the device-facing endpoint.
	DevicePortWarning() string
}

// FirmwareReconciler stores firmware images in object storage, computes
// their digests, checks their signatures and deletes them with the
// Firmware.
type FirmwareReconciler struct {
	client.Client
	// APIReader reads Secrets without caching every Secret of the cluster;
	// mgr.GetAPIReader(). Defaults to Client.
	APIReader client.Reader
	// Store is the object storage; Bucket the operator's bucket in it.
	Store  FirmwareStore
	Bucket string
	// Recorder emits events for transitions a human cares about.
	Recorder events.EventRecorder
	// HTTPClient fetches url sources; http.DefaultClient when nil.
	HTTPClient *http.Client
	// UploadURLExpiry is the lifetime of the pre-signed PUT URL published
	// for upload sources.
	UploadURLExpiry time.Duration
	// UploadPollInterval is how often an awaited upload is looked for.
	UploadPollInterval time.Duration
	// MaxImageSize refuses larger images.
	MaxImageSize int64
	// DownloadTimeout bounds the download of a url source.
	DownloadTimeout time.Duration
	// MaxConcurrentReconciles lets other Firmwares proceed while one
	// downloads; every concurrent transfer holds one storage part buffer.
	MaxConcurrentReconciles int
	// ResyncInterval re-checks a Ready image's object this often.
	ResyncInterval time.Duration
	// SharedObjectPrefixes are "bucket/prefix" entries every namespace may
	// use as source.object, set by an admin; by default a namespace reads
	// only its own keys (see objectOutside).
	SharedObjectPrefixes []string

	bucketMu    sync.Mutex
	bucketReady bool
}

// +kubebuilder:rbac:groups=ota.otafleet.dev,resources=firmwares,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=ota.otafleet.dev,resources=firmwares/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=ota.otafleet.dev,resources=firmwares/finalizers,verbs=update
// +kubebuilder:rbac:groups=ota.otafleet.dev,resources=products,verbs=get;list;watch
// +kubebuilder:rbac:groups=ota.otafleet.dev,resources=verificationruns;upgradebatches,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers the controller, its field indexes and watches.
func (r *FirmwareReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.setDefaults(mgr)
	if err := indexFirmwareUsage(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return err
	}
	if w := r.Store.DevicePortWarning(); w != "" {
		mgr.GetLogger().Info("Devices on the vendor SDK cannot download firmware: "+w, "controller", "firmware")
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&otav1.Firmware{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}, verificationChanged))).
		Watches(&otav1.Product{}, handler.EnqueueRequestsFromMapFunc(r.firmwaresOfProduct)).
		Watches(&otav1.VerificationRun{}, handler.EnqueueRequestsFromMapFunc(campaignFirmware),
			builder.WithPredicates(campaignUsageChanged)).
		Watches(&otav1.UpgradeBatch{}, handler.EnqueueRequestsFromMapFunc(campaignFirmware),
			builder.WithPredicates(campaignUsageChanged)).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.MaxConcurrentReconciles}).
		Named("firmware").
		Complete(r)
}

func (r *FirmwareReconciler) setDefaults(mgr ctrl.Manager) {
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder("firmware-controller")
	}
	if r.HTTPClient == nil {
		r.HTTPClient = http.DefaultClient
	}
	if r.UploadURLExpiry == 0 {
		r.UploadURLExpiry = DefaultUploadURLExpiry
	}
	if r.UploadPollInterval == 0 {
		r.UploadPollInterval = DefaultUploadPollInterval
	}
	if r.MaxImageSize == 0 {
		r.MaxImageSize = DefaultMaxImageSize
	}
	if r.DownloadTimeout == 0 {
		r.DownloadTimeout = DefaultDownloadTimeout
	}
	if r.MaxConcurrentReconciles == 0 {
		r.MaxConcurrentReconciles = 2
	}
	if r.ResyncInterval == 0 {
		r.ResyncInterval = defaultResyncInterval
	}
}

// Reconcile stores and checks one Firmware's image.
func (r *FirmwareReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	fw := &otav1.Firmware{}
	if err := r.Get(ctx, req.NamespacedName, fw); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	// controller-runtime's logger in ctx already names the Firmware.
	s := newFirmwareScope(fw)
	defer func() {
		if err := r.patchStatus(ctx, s); err != nil {
			retErr = kerrors.NewAggregate([]error{retErr, err})
			return
		}
		r.flushEvents(s)
	}()

	if !fw.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, s)
	}
	if controllerutil.AddFinalizer(fw, FirmwareFinalizer) {
		// Before anything is stored, so that nothing can leak.
		if err := r.Update(ctx, fw); err != nil {
			return ctrl.Result{}, err
		}
		s.rebase()
	}

	steps := []func(context.Context, *firmwareScope) error{
		r.reconcileProduct,
		r.reconcileArtifact,
		r.reconcileSignature,
		r.reconcileUsage,
	}
	var errs []error
	for _, step := range steps {
		if err := step(ctx, s); err != nil {
			errs = append(errs, err)
		}
		if s.halt {
			break
		}
	}
	// Not a step: whatever stopped the steps, the verification must follow
	// the runs (an image not stored yet is Unverified).
	if err := r.reconcileVerification(ctx, s); err != nil {
		errs = append(errs, err)
	}
	r.summarize(ctx, s)
	if len(errs) > 0 {
		return ctrl.Result{}, kerrors.NewAggregate(errs)
	}
	return ctrl.Result{RequeueAfter: s.requeueAfter(r.ResyncInterval)}, nil
}

// reconcileDelete holds the deletion while an active campaign uses the
// image, then deletes what this controller stored and lets go.
func (r *FirmwareReconciler) reconcileDelete(ctx context.Context, s *firmwareScope) (ctrl.Result, error) {
	fw := s.fw
	if !controllerutil.ContainsFinalizer(fw, FirmwareFinalizer) {
		return ctrl.Result{}, nil
	}
	if err := errors.Join(r.reconcileProduct(ctx, s), r.reconcileUsage(ctx, s)); err != nil {
		return ctrl.Result{}, err
	}
	if len(s.activeCampaigns) > 0 {
		r.holdDeletion(ctx, s)
		return ctrl.Result{RequeueAfter: inUseRecheck}, nil
	}
	if err := r.deleteStoredObjects(ctx, fw); err != nil {
		s.setStorageError(r.Store.Sanitize(err))
		r.summarize(ctx, s)
		return ctrl.Result{}, err
	}
	controllerutil.RemoveFinalizer(fw, FirmwareFinalizer)
	if err := r.Update(ctx, fw); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	log.FromContext(ctx).Info("Deleted firmware image", "bucket", r.Bucket, "key", artifactKey(fw))
	s.gone = true
	return ctrl.Result{}, nil
}

// deleteStoredObjects deletes the image and any pending upload. Only keys
// this controller derives from the Firmware are deleted: a source object
// in someone else's bucket is never touched.
func (r *FirmwareReconciler) deleteStoredObjects(ctx context.Context, fw *otav1.Firmware) error {
	errs := []error{r.Store.Delete(ctx, r.Bucket, artifactKey(fw)), r.Store.Delete(ctx, r.Bucket, uploadKey(fw))}
	// An image stored under the older key scheme is recorded in status;
	// only that scheme's key of this very Firmware is deleted.
	old := "firmware/" + fw.Namespace + "/" + fw.Name + "/" + string(fw.UID) + "/image.bin"
	if a := fw.Status.Artifact; a != nil && a.Bucket == r.Bucket && a.Key == old {
		errs = append(errs, r.Store.Delete(ctx, r.Bucket, a.Key))
	}
	return errors.Join(errs...)
}

// patchStatus writes the status once per reconcile, and only when it
// changed. The patch carries the resourceVersion it was computed from: a
// merge patch against a stale cached copy would leave out fields that
// merely look unchanged, so a stale reconcile must fail and run again.
func (r *FirmwareReconciler) patchStatus(ctx context.Context, s *firmwareScope) error {
	if s.gone || !s.statusChanged() {
		return nil
	}
	err := r.Status().Patch(ctx, s.fw, client.MergeFromWithOptions(s.base, client.MergeFromWithOptimisticLock{}))
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// ensureBucket creates the bucket on first use rather than at start-up, so
// the operator starts, and reports the problem in conditions, while object
// storage is unreachable.
func (r *FirmwareReconciler) ensureBucket(ctx context.Context) error {
	r.bucketMu.Lock()
	defer r.bucketMu.Unlock()
	if r.bucketReady {
		return nil
	}
	if err := r.Store.EnsureBucket(ctx, r.Bucket); err != nil {
		return err
	}
	r.bucketReady = true
	return nil
}
