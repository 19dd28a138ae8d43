package plugin

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
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

// maxInlineDevices is the API's limit on spec.scope.devices; longer lists go
// to a ConfigMap.
const maxInlineDevices = 1000

// maxRetryBatches bounds the search for a free <batch>-retry-N name.
const maxRetryBatches = 100

func newRetryCommand(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "retry BATCH",
		Short: "Re-run the FAILED and TIMED_OUT devices of a batch as a new batch <batch>-retry-N",
		Long: "retry reads the batch's UpgradeSlices and creates a new UpgradeBatch with a List\n" +
			"scope holding the devices that failed or timed out. Up to 1000 names are inlined;\n" +
			"more are written to a ConfigMap of the same name (one name a line), owned by the new\n" +
			"batch so that it is deleted with it. The new batch copies firmware, source versions,\n" +
			"rate, retry, abort, timeout, confirmation, overwrite and tags; not waves or schedule.",
		Example: "  # After smart-plug-wifi-1.1.0 finished with failures\n" +
			"  kubectl ota retry smart-plug-wifi-1.1.0\n" +
			"  kubectl ota status batch smart-plug-wifi-1.1.0-retry-1 -w",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: o.completeNames(&otav1.UpgradeBatchList{}),
		RunE: o.runE(func(ctx context.Context, c client.Client, ns string, args []string) error {
			nb, n, err := retryBatch(ctx, c, ns, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(o.streams.Out, "upgradebatch/%s created with %d devices\n", nb.Name, n)
			return nil
		}),
	}
}

// failedDevices returns the sorted names of the batch's devices whose task
// ended FAILED or TIMED_OUT.
func failedDevices(ctx context.Context, c client.Client, ns, batch string) ([]string, error) {
	var names []string
	list := &otav1.UpgradeSliceList{}
	err := pages(ctx, c, list, slicesPerPage, func() (bool, error) {
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

// retrySpec derives the new batch's spec: the same image and guard rails,
// one wave, no schedule, a List scope.
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
	}
}

func retryBatch(ctx context.Context, c client.Client, ns, name string) (*otav1.UpgradeBatch, int, error) {
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
	if len(devices) <= maxInlineDevices {
		nb.Spec.Scope.Devices = devices
		return c.Create(ctx, nb, fieldOwner)
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: nb.Namespace, Name: nb.Name,
			Annotations: map[string]string{AnnotationRetryOf: nb.Annotations[AnnotationRetryOf]}},
		Data: map[string]string{"devices": strings.Join(devices, "\n") + "\n"},
	}
	if err := c.Create(ctx, cm, fieldOwner); err != nil {
		return err
	}
	nb.Spec.Scope.DevicesFrom = &otav1.DeviceListSource{
		ConfigMapRef: &otav1.ConfigMapKeyReference{Name: cm.Name, Key: "devices"},
	}
	if err := c.Create(ctx, nb, fieldOwner); err != nil {
		// Leave nothing behind for a batch that does not exist.
		_ = c.Delete(ctx, cm)
		return err
	}
	// Owned by the batch, the list goes away when the batch is deleted.
	orig := cm.DeepCopy()
	if err := controllerutil.SetOwnerReference(nb, cm, c.Scheme()); err != nil {
		return err
	}
	return c.Patch(ctx, cm, client.MergeFrom(orig), fieldOwner)
}
