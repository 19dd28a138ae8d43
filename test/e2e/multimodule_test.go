package e2e

import (
	"context"
	"testing"
	"time"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/lab"
)

// The console guide's multi-module scenario on real parts: devices at WiFi
// 1.0.0 / MCU 2.0.0, a dynamic WiFi batch and a dynamic MCU batch created
// together. The MCU batch finds the devices busy, then takes each one when
// it reboots after its WiFi upgrade and informs MCU 2.0.0 again.
func TestMultiModuleEndToEnd(t *testing.T) {
	ctx := context.Background()
	l, err := lab.Start(ctx, lab.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	c := l.Client()
	const ns, pk, n = "multi", "multiplug", 20
	prod := &otav1.Product{ObjectMeta: lab.ObjectMeta(ns, "plug"), Spec: otav1.ProductSpec{ProductKey: pk, Modules: []string{"wifi", "mcu"}}}
	if err := l.CreateProduct(ctx, prod); err != nil {
		t.Fatal(err)
	}
	fleet, err := devicesim.Start(ctx, l.FleetConfig(devicesim.Config{
		ProductKey: pk, Devices: n, RebootAfterFlash: true, ProgressInterval: 50 * time.Millisecond,
		Modules: []devicesim.Module{{Name: "wifi", Version: "1.0.0"}, {Name: "mcu", Version: "2.0.0"}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Stop()
	if err := fleet.WaitInformed(ctx); err != nil {
		t.Fatal(err)
	}
	batches := map[string]*otav1.UpgradeBatch{}
	for _, m := range []struct{ module, from, to string }{{"wifi", "1.0.0", "1.1.0"}, {"mcu", "2.0.0", "2.2.0"}} {
		fw := &otav1.Firmware{ObjectMeta: lab.ObjectMeta(ns, m.module+"-"+m.to), Spec: otav1.FirmwareSpec{
			Product: "plug", Module: m.module, Version: m.to, VerificationRequired: ptr.To(false)}}
		if err := l.PushFirmware(ctx, fw, []byte("image of "+m.module)); err != nil {
			t.Fatal(err)
		}
		batches[m.module] = &otav1.UpgradeBatch{ObjectMeta: lab.ObjectMeta(ns, m.module), Spec: otav1.UpgradeBatchSpec{
			Firmware: fw.Name, Type: otav1.BatchDynamic, SourceVersions: []string{m.from}}}
	}
	// Users confirm the WiFi upgrade in the app, as in the guide; until
	// then the devices are held by the WiFi batch.
	batches["wifi"].Spec.ConfirmationRequired = true
	// The MCU batch only after the WiFi batch has its devices: "created
	// together" in the guide, in that order.
	if err := c.Create(ctx, batches["wifi"]); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitBatch(ctx, batches["wifi"], 30*time.Second, func(b *otav1.UpgradeBatch) bool {
		return b.Status.Counts.Confirm == n
	}, nil); err != nil {
		t.Fatalf("WiFi batch did not select the fleet: %v", err)
	}
	if err := c.Create(ctx, batches["mcu"]); err != nil {
		t.Fatal(err)
	}
	// The MCU batch records every device busy ("会直接显示失败").
	if err := l.WaitBatch(ctx, batches["mcu"], 30*time.Second, func(b *otav1.UpgradeBatch) bool {
		r := b.Status.FailureReasons
		return len(r) == 1 && r[0].Reason == otav1.FailureBusy && r[0].Count == n
	}, nil); err != nil {
		t.Fatalf("the MCU batch did not find the devices busy: %+v", batches["mcu"].Status)
	}
	for _, d := range fleet.DeviceNames() { // what the app API's confirm does
		if err := l.Parts.Engine.Confirm(pk, d); err != nil {
			t.Fatal(err)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err = fleet.Wait(wctx, func(s devicesim.Summary) bool {
		return s.Versions["wifi"]["1.1.0"] == n && s.Versions["mcu"]["2.2.0"] == n
	})
	if err != nil {
		for _, b := range batches {
			_ = c.Get(ctx, client.ObjectKeyFromObject(b), b)
		}
		t.Fatalf("fleet did not reach wifi 1.1.0 / mcu 2.2.0: %v\nfleet %s\nwifi %+v\nmcu %+v", err,
			fleet.Summary().Line(), batches["wifi"].Status, batches["mcu"].Status)
	}
	if err := l.WaitBatch(ctx, batches["mcu"], 30*time.Second, func(b *otav1.UpgradeBatch) bool {
		return b.Status.Counts.Succeeded == n
	}, nil); err != nil {
		t.Fatalf("MCU batch status %+v: %v", batches["mcu"].Status, err)
	}
	if c := batches["mcu"].Status.Counts; c.Failed != 0 || c.Total != n || batches["mcu"].Status.Phase != otav1.BatchRunning {
		t.Fatalf("a dynamic MCU batch ends with every device succeeded and keeps running: %s %+v", batches["mcu"].Status.Phase, c)
	}
}
