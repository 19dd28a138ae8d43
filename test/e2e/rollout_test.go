// Package e2e runs otafleet end to end on real parts: kube-apiserver and
// etcd, an MQTT broker, MinIO, the manager, and a simulated fleet that
// downloads real images through pre-signed URLs.
package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/lab"
)

func TestRolloutEndToEnd(t *testing.T) {
	ctx := context.Background()
	l, err := lab.Start(ctx, lab.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	c := l.Client()
	const ns, pk = "e2e", "e2eplug"
	prod := &otav1.Product{ObjectMeta: lab.ObjectMeta(ns, "plug"), Spec: otav1.ProductSpec{ProductKey: pk}}
	if err := l.CreateProduct(ctx, prod); err != nil {
		t.Fatal(err)
	}

	fleet, err := devicesim.Start(ctx, l.FleetConfig(devicesim.Config{
		ProductKey: pk, Devices: 60, Mode: devicesim.Multiplexed,
		Failures: devicesim.Failures{DownloadFail: 0.1}, Seed: 7, ProgressInterval: 100 * time.Millisecond,
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Stop()
	if err := fleet.WaitInformed(ctx); err != nil {
		t.Fatal(err)
	}

	image := make([]byte, 256<<10)
	_, _ = rand.Read(image)
	fw := &otav1.Firmware{ObjectMeta: lab.ObjectMeta(ns, "plug-2.0.0"),
		Spec: otav1.FirmwareSpec{Product: "plug", Version: "2.0.0", SignMethod: otav1.SignMethodSHA256}}
	if err := l.PushFirmware(ctx, fw, image); err != nil {
		t.Fatalf("pushing firmware: %v", err)
	}
	sum := sha256.Sum256(image)
	if fw.Status.Artifact.SHA256 != hex.EncodeToString(sum[:]) || fw.Status.Artifact.Size != int64(len(image)) {
		t.Fatalf("stored artifact %+v does not match the image", fw.Status.Artifact)
	}

	// A batch refuses to start before verification.
	ub := &otav1.UpgradeBatch{ObjectMeta: lab.ObjectMeta(ns, "rollout"), Spec: otav1.UpgradeBatchSpec{
		Firmware: fw.Name, RatePerMinute: 6000, Waves: []otav1.Wave{{Percent: 20}, {Percent: 100}},
	}}
	if err := c.Create(ctx, ub); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitBatch(ctx, ub, 30*time.Second, func(b *otav1.UpgradeBatch) bool {
		return conditionReason(b.Status.Conditions, otav1.ConditionStalled) == otav1.ReasonFirmwareUnverified
	}, nil); err != nil {
		t.Fatalf("the batch did not wait for verification: %v (status %+v)", err, ub.Status)
	}
	if s := fleet.Summary(); s.PushesReceived != 0 {
		t.Fatalf("%d pushes before verification", s.PushesReceived)
	}

	var testers []string
	for _, n := range fleet.DeviceNames() {
		if fleet.Plan(n) == devicesim.PlanSucceed && len(testers) < 3 {
			testers = append(testers, n)
		}
	}
	vr := &otav1.VerificationRun{ObjectMeta: lab.ObjectMeta(ns, "verify"),
		Spec: otav1.VerificationRunSpec{Firmware: fw.Name, Devices: testers}}
	if err := c.Create(ctx, vr); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitRun(ctx, vr, time.Minute); err != nil || vr.Status.Phase != otav1.RunSucceeded {
		t.Fatalf("verification: %v, status %+v", err, vr.Status)
	}

	if err := l.WaitBatch(ctx, ub, 2*time.Minute, lab.Finished, nil); err != nil {
		t.Fatalf("rollout did not finish: %v (status %+v)", err, ub.Status)
	}
	s := fleet.Summary()
	want := int64(s.Outcomes[devicesim.OutcomeDownloadFailed])
	got := ub.Status.Counts
	if ub.Status.Phase != otav1.BatchCompleted || got.Total != 57 || got.Failed != want || got.Succeeded != 57-want {
		t.Fatalf("batch %s counts %+v; simulator outcomes %v (3 devices were verified before)", ub.Status.Phase, got, s.Outcomes)
	}
	if s.Versions["default"]["2.0.0"] != int(60-want) || s.InvalidReceived != 0 {
		t.Fatalf("fleet versions %v, invalid messages %d", s.Versions, s.InvalidReceived)
	}
	if ub.Status.CurrentWave != 2 || len(ub.Status.FailureReasons) != 1 || ub.Status.FailureReasons[0].Reason != otav1.FailureDownload {
		t.Fatalf("status %+v", ub.Status)
	}
	listFromObject(t, l, ns, fleet)
}

// listFromObject rolls a second image out to five devices named in a list
// kept in object storage (devicesFrom.object), as a team does for 10^6 names.
func listFromObject(t *testing.T, l *lab.Lab, ns string, fleet *devicesim.Fleet) {
	ctx := context.Background()
	var five []string
	for _, n := range fleet.DeviceNames() {
		if fleet.Plan(n) == devicesim.PlanSucceed && len(five) < 5 {
			five = append(five, n)
		}
	}
	list := "# beta testers\n" + strings.Join(five, "\n") + "\n\n"
	if _, err := l.Parts.Store.Put(ctx, l.Options.S3.Bucket, ns+"/lists/beta.txt", strings.NewReader(list), int64(len(list)), "text/plain"); err != nil {
		t.Fatal(err)
	}
	fw := &otav1.Firmware{ObjectMeta: lab.ObjectMeta(ns, "plug-3.0.0"),
		Spec: otav1.FirmwareSpec{Product: "plug", Version: "3.0.0", VerificationRequired: ptr.To(false)}}
	if err := l.PushFirmware(ctx, fw, []byte("image three")); err != nil {
		t.Fatal(err)
	}
	ub := &otav1.UpgradeBatch{ObjectMeta: lab.ObjectMeta(ns, "beta"), Spec: otav1.UpgradeBatchSpec{
		Firmware: fw.Name, Scope: otav1.Scope{Type: otav1.ScopeList,
			DevicesFrom: &otav1.DeviceListSource{Object: &otav1.ObjectSource{Key: ns + "/lists/beta.txt"}}},
	}}
	if err := l.Client().Create(ctx, ub); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitBatch(ctx, ub, time.Minute, lab.Finished, nil); err != nil {
		t.Fatalf("list batch: %v (status %+v)", err, ub.Status)
	}
	if c := ub.Status.Counts; ub.Status.Phase != otav1.BatchCompleted || c.Total != 5 || c.Succeeded != 5 {
		t.Fatalf("list batch %s: %+v", ub.Status.Phase, c)
	}
	for _, n := range five {
		if d, _ := fleet.Device(n); d.Versions["default"] != "3.0.0" {
			t.Fatalf("device %s: %+v", n, d)
		}
	}
}

func conditionReason(conds []metav1.Condition, typ string) string {
	for _, c := range conds {
		if c.Type == typ && c.Status == metav1.ConditionTrue {
			return c.Reason
		}
	}
	return ""
}
