package steer

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// AnnotationRetryOf marks a batch created by `kubectl ota retry` with the
// batch it re-runs.
const AnnotationRetryOf = "ota.otafleet.dev/retry-of"

// MaxInlineDevices is the API's limit on spec.scope.devices; longer lists go
// to a ConfigMap.
const MaxInlineDevices = 1000

// slicesPerPage keeps one page of slices near 5,000 devices.
const slicesPerPage = 50

// maxRetryBatches bounds the search for a free <batch>-retry-N name.
const maxRetryBatches = 100

// failedDevices returns the sorted names of the batch's devices whose task
// ended FAILED or TIMED_OUT.
func failedDevices(ctx context.Context, c client.Client, ns, batch string) ([]string, error) {
	var names []string
	list := &otav1.UpgradeSliceList{}
	err := Pages(ctx, c, list, slicesPerPage, func() (bool, error) {
		for i := range list.Items {
			for _, t := range list.Items[i].Tasks {
				if t.State == otav1.TaskFailed || t.State == otav1.TaskTimedOut {
					names = append(names, t.Device)
				}
			}
		}
		return true, nil
	}, client.InNamespace(ns), client.MatchingLabels{
		otav1.LabelCampaign: batch, otav1.LabelKind: string(otav1.KindUpgradeBatch),
	})
	sort.Strings(names)
	return names, err
}

// retrySpec derives the new batch's spec: the same image and guard rails
// (soak and maintenance windows included), one wave, no schedule, a List
// scope.
func retrySpec(old otav1.UpgradeBatchSpec) otav1.UpgradeBatchSpec {
	return otav1.UpgradeBatchSpec{
		Firmware:             old.Firmware,
		Type:                 otav1.BatchStatic,
		Scope:                otav1.Scope{Type: otav1.ScopeList},
		SourceVersions:       old.SourceVersions,
		RatePerMinute:        old.RatePerMinute,
		Abort:                old.Abort,
		Retry:                old.Retry,
		Timeout:              old.Timeout,
		ConfirmationRequired: old.ConfirmationRequired,
		Overwrite:            old.Overwrite,
		Tags:                 old.Tags,
		Soak:                 old.Soak,
		MaintenanceWindows:   old.MaintenanceWindows,
	}
}

// Retry re-runs the FAILED and TIMED_OUT devices of a batch as a new
// batch <batch>-retry-N and returns it with the number of its devices.
func Retry(ctx context.Context, c client.Client, ns, name string) (*otav1.UpgradeBatch, int, error) {
	old := &otav1.UpgradeBatch{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, old); err != nil {
		return nil, 0, err
	}
	devices, err := failedDevices(ctx, c, ns, name)
	if err != nil {
		return nil, 0, err
	}
	if len(devices) == 0 {
		return nil, 0, fmt.Errorf("upgradebatch %s has no FAILED or TIMED_OUT devices to retry", name)
	}
	for i := 1; i <= maxRetryBatches; i++ {
		nb := &otav1.UpgradeBatch{ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: fmt.Sprintf("%s-retry-%d", name, i),
			Annotations: map[string]string{AnnotationRetryOf: name},
		}, Spec: retrySpec(old.Spec)}
		err := createRetry(ctx, c, nb, devices)
		if apierrors.IsAlreadyExists(err) {
			continue // an earlier retry took this number
		}
		return nb, len(devices), err
	}
	return nil, 0, fmt.Errorf("upgradebatch %s already has %d retries", name, maxRetryBatches)
}

// createRetry creates the batch, first writing long device lists to a
// ConfigMap: the batch must find its list when it is first reconciled.
func createRetry(ctx context.Context, c client.Client, nb *otav1.UpgradeBatch, devices []string) error {
	if len(devices) <= MaxInlineDevices {
		nb.Spec.Scope.Devices = devices
		return c.Create(ctx, nb, FieldOwner)
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: nb.Namespace, Name: nb.Name,
			Annotations: map[string]string{AnnotationRetryOf: nb.Annotations[AnnotationRetryOf]}},
		Data: map[string]string{"devices": strings.Join(devices, "\n") + "\n"},
	}
	if err := c.Create(ctx, cm, FieldOwner); err != nil {
		return err
	}
	nb.Spec.Scope.DevicesFrom = &otav1.DeviceListSource{
		ConfigMapRef: &otav1.ConfigMapKeyReference{Name: cm.Name, Key: "devices"},
	}
	if err := c.Create(ctx, nb, FieldOwner); err != nil {
		// Leave nothing behind for a batch that does not exist.
		_ = c.Delete(ctx, cm)
		return err
	}
	// Owned by the batch, the list goes away when the batch is deleted.
	orig := cm.DeepCopy()
	if err := controllerutil.SetOwnerReference(nb, cm, c.Scheme()); err != nil {
		return err
	}
	return c.Patch(ctx, cm, client.MergeFrom(orig), FieldOwner)
}
