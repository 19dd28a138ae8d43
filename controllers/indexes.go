package controllers

import (
	"context"
	"errors"
	"sync"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// campaignFirmwareIndex indexes VerificationRuns and UpgradeBatches by
// spec.firmware. The Firmware, VerificationRun and UpgradeBatch controllers
// all use it; whichever is set up first registers it.
const campaignFirmwareIndex = "spec.firmware"

var indexed sync.Map // client.FieldIndexer → struct{}

func indexCampaignFirmware(ctx context.Context, idx client.FieldIndexer) error {
	if _, done := indexed.LoadOrStore(idx, struct{}{}); done {
		return nil
	}
	return errors.Join(
		idx.IndexField(ctx, &otav1.VerificationRun{}, campaignFirmwareIndex, func(o client.Object) []string {
			return []string{o.(*otav1.VerificationRun).Spec.Firmware}
		}),
		idx.IndexField(ctx, &otav1.UpgradeBatch{}, campaignFirmwareIndex, func(o client.Object) []string {
			return []string{o.(*otav1.UpgradeBatch).Spec.Firmware}
		}),
	)
}

// campaignsOf maps a Firmware to the requests of the campaigns in list's
// kind that use it.
func campaignsOf(ctx context.Context, c client.Reader, list client.ObjectList, fw client.Object) []reconcile.Request {
	if err := c.List(ctx, list, client.InNamespace(fw.GetNamespace()),
		client.MatchingFields{campaignFirmwareIndex: fw.GetName()}); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	_ = apimeta.EachListItem(list, func(o runtime.Object) error {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(o.(client.Object))})
		return nil
	})
	return reqs
}
