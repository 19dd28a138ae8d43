package controllers

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/signature"
	"github.com/otafleet/otafleet/internal/storage"
)

// putSourceObject stores im in the operator's bucket under key, for object
// sources.
func putSourceObject(t *testing.T, key string, im image) otav1.FirmwareSource {
	t.Helper()
	if err := suite.store.EnsureBucket(t.Context(), suiteBucket); err != nil {
		t.Fatal(err)
	}
	if _, err := suite.store.Put(t.Context(), suiteBucket, key, im.reader(), im.size, ""); err != nil {
		t.Fatal(err)
	}
	return otav1.FirmwareSource{Object: &otav1.ObjectSource{Key: key}}
}

func createKeySecret(t *testing.T, ns, name string, pub ed25519.PublicKey) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Data:       map[string][]byte{"ed25519.pub": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})},
	}
	if err := suite.k8s.Create(t.Context(), s); err != nil {
		t.Fatal(err)
	}
}

func TestFirmwareSignature(t *testing.T) {
	ns := newNamespace(t, "fw-sig-")
	createProduct(t, ns, "prod", ns, "mcu")
	pub, priv, _ := ed25519.GenerateKey(nil)
	_, otherPriv, _ := ed25519.GenerateKey(nil)
	im := image{seed: 8, size: 512 << 10}
	_, sha := im.digests(t)
	good, _ := signature.Sign(priv, sha)
	forged, _ := signature.Sign(otherPriv, sha)
	createKeySecret(t, ns, "signing-key", pub)
	signed := func(value, secret string) func(*otav1.Firmware) {
		return func(fw *otav1.Firmware) {
			fw.Spec.Signature = &otav1.FirmwareSignature{Value: value,
				PublicKeyRef: otav1.SecretKeyReference{Name: secret, Key: "ed25519.pub"}}
		}
	}
	src := putSourceObject(t, ns+"/sources/fw.bin", im)

	createFirmware(t, ns, "good", src, signed(good, "signing-key"))
	createFirmware(t, ns, "forged", src, signed(forged, "signing-key"))
	createFirmware(t, ns, "later-key", src, signed(good, "late-key"))

	fw := waitFirmwareReady(t, ns, "good")
	if c := readyCondition(fw); !strings.Contains(c.Message, "signature valid") {
		t.Errorf("Ready message %q does not mention the signature", c.Message)
	}
	fw = waitFirmwareCondition(t, ns, "forged", otav1.ConditionStalled, metav1.ConditionTrue, otav1.ReasonSignatureInvalid)
	if c := readyCondition(fw); c.Status != metav1.ConditionFalse {
		t.Errorf("forged signature: Ready %s", c.Status)
	}

	// A missing key Secret is waited for, not refused.
	waitFirmwareCondition(t, ns, "later-key", otav1.ConditionReconciling, metav1.ConditionTrue, ReasonPublicKeyUnavailable)
	createKeySecret(t, ns, "late-key", pub)
	fw = getFirmware(t, ns, "later-key")
	fw.Annotations = map[string]string{"example.com/poke": time.Now().Format(time.RFC3339Nano)}
	if err := suite.k8s.Update(t.Context(), fw); err != nil {
		t.Fatal(err)
	}
	waitFirmwareReady(t, ns, "later-key")
}

func setRunPhase(t *testing.T, vr *otav1.VerificationRun, phase otav1.RunPhase) {
	t.Helper()
	vr.Status.Phase = phase
	if err := suite.k8s.Status().Update(t.Context(), vr); err != nil {
		t.Fatal(err)
	}
}

func TestFirmwareDeletionHeldWhileInUse(t *testing.T) {
	ns := newNamespace(t, "fw-inuse-")
	createProduct(t, ns, "prod", ns, "mcu")
	im := image{seed: 9, size: 128 << 10}
	fw := createFirmware(t, ns, "fw", putSourceObject(t, ns+"/sources/fw.bin", im))
	waitFirmwareReady(t, ns, "fw")

	vr := &otav1.VerificationRun{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "try"},
		Spec:       otav1.VerificationRunSpec{Firmware: "fw", Devices: []string{"dev-1"}},
	}
	ub := &otav1.UpgradeBatch{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "old-rollout"},
		Spec:       otav1.UpgradeBatchSpec{Firmware: "fw"},
	}
	for _, o := range []client.Object{vr, ub} {
		if err := suite.k8s.Create(t.Context(), o); err != nil {
			t.Fatal(err)
		}
	}
	setRunPhase(t, vr, otav1.RunRunning)
	ub.Status.Phase = otav1.BatchCompleted
	if err := suite.k8s.Status().Update(t.Context(), ub); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		u := getFirmware(t, ns, "fw").Status.Usage
		return u.Campaigns == 2 && u.ActiveCampaigns == 1, fmt.Sprintf("usage %+v", u)
	})

	if err := suite.k8s.Delete(t.Context(), fw); err != nil {
		t.Fatal(err)
	}
	held := waitFirmwareCondition(t, ns, "fw", otav1.ConditionReconciling, metav1.ConditionTrue, otav1.ReasonInUse)
	if c := apimeta.FindStatusCondition(held.Status.Conditions, otav1.ConditionReconciling); !strings.Contains(c.Message, "VerificationRun/try") ||
		strings.Contains(c.Message, "old-rollout") {
		t.Errorf("InUse message %q should name the active run only", c.Message)
	}
	if held.DeletionTimestamp.IsZero() {
		t.Fatal("Firmware not being deleted")
	}
	if _, err := suite.store.Stat(t.Context(), suiteBucket, artifactKey(held)); err != nil {
		t.Fatalf("image deleted while a campaign uses it: %v", err)
	}

	setRunPhase(t, vr, otav1.RunSucceeded)
	waitFirmwareGone(t, fw)
	if _, err := suite.store.Stat(t.Context(), suiteBucket, artifactKey(held)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("stored image survived the Firmware: %v", err)
	}
}
