package controllers

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// createRun creates a run owned by fw (as the VerificationRun controller
// makes it, which this suite does not run) and gives it a status.
func createRun(t *testing.T, fw *otav1.Firmware, name string, phase otav1.RunPhase, sha, reason string) *otav1.VerificationRun {
	t.Helper()
	vr := &otav1.VerificationRun{
		ObjectMeta: metav1.ObjectMeta{Namespace: fw.Namespace, Name: name, OwnerReferences: []metav1.OwnerReference{{
			APIVersion: otav1.GroupVersion.String(), Kind: "Firmware", Name: fw.Name, UID: fw.UID, Controller: ptr.To(true)}}},
		Spec: otav1.VerificationRunSpec{Firmware: fw.Name, Devices: []string{"dev-1"}},
	}
	if err := suite.k8s.Create(t.Context(), vr); err != nil {
		t.Fatal(err)
	}
	setRunState(t, vr, phase, sha, reason)
	return vr
}

func setRunState(t *testing.T, vr *otav1.VerificationRun, phase otav1.RunPhase, sha, reason string) {
	t.Helper()
	vr.Status.Phase, vr.Status.SHA256 = phase, sha
	if reason != "" {
		setCondition(&vr.Status.Conditions, vr.Generation, otav1.ConditionReady, phase == otav1.RunSucceeded, reason, reason+" on dev-1")
	}
	if err := suite.k8s.Status().Update(t.Context(), vr); err != nil {
		t.Fatal(err)
	}
}

func waitVerification(t *testing.T, ns, name string, state otav1.VerificationState, run string) *otav1.Firmware {
	t.Helper()
	var fw *otav1.Firmware
	eventually(t, 30*time.Second, func() (bool, string) {
		fw = getFirmware(t, ns, name)
		v := fw.Status.Verification
		return v.State == state && v.Run == run, fmt.Sprintf("verification %+v, want %s by %q", v, state, run)
	})
	return fw
}

// stableResourceVersion fails when the Firmware keeps being written: a
// write loop between two writers of the verification climbed by hundreds
// a second. It watches for a bounded number of polls.
func stableResourceVersion(t *testing.T, ns, name string) {
	t.Helper()
	first := getFirmware(t, ns, name).ResourceVersion
	changes := 0
	last := first
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if rv := getFirmware(t, ns, name).ResourceVersion; rv != last {
			changes, last = changes+1, rv
		}
		select {
		case <-t.Context().Done():
			t.Fatal("test context ended")
		case <-time.After(100 * time.Millisecond): // polling interval
		}
	}
	// One write may still land (the usage or a condition catching up);
	// a loop makes dozens.
	if changes > 1 {
		t.Errorf("Firmware written %d times in 3 s while nothing changed (resourceVersion %s -> %s)", changes, first, last)
	}
}

func waitCampaigns(t *testing.T, ns, name string, n int32) {
	t.Helper()
	eventually(t, 30*time.Second, func() (bool, string) {
		u := getFirmware(t, ns, name).Status.Usage
		return u.Campaigns == n, fmt.Sprintf("usage %+v, want %d campaigns", u, n)
	})
}

func TestFirmwareVerificationFromRuns(t *testing.T) {
	ns := newNamespace(t, "fw-verify-")
	createProduct(t, ns, "prod", ns, "mcu")
	fw := createFirmware(t, ns, "fw", putSourceObject(t, ns+"/v1.bin", image{seed: 21, size: 1 << 16}))
	fw = waitFirmwareReady(t, ns, "fw")
	sha := fw.Status.Artifact.SHA256
	waitVerification(t, ns, "fw", otav1.VerificationUnverified, "")

	// The loop of issue #12: a failed run and a new one for one Firmware.
	createRun(t, fw, "a-first", otav1.RunFailed, sha, otav1.ReasonFailed)
	waitVerification(t, ns, "fw", otav1.VerificationFailed, "a-first")
	second := createRun(t, fw, "b-second", otav1.RunRunning, sha, "")
	waitVerification(t, ns, "fw", otav1.VerificationVerifying, "b-second")
	waitCampaigns(t, ns, "fw", 2)
	stableResourceVersion(t, ns, "fw")

	setRunState(t, second, otav1.RunSucceeded, sha, otav1.ReasonSucceeded)
	fw = waitVerification(t, ns, "fw", otav1.VerificationVerified, "b-second")
	if v := fw.Status.Verification; v.SHA256 != sha || v.FirmwareUID != string(fw.UID) {
		t.Errorf("verification records image %q of Firmware %q, want %q of %q", v.SHA256, v.FirmwareUID, sha, fw.UID)
	}
	// A later run that fails or is canceled does not take it back; an
	// inconclusive one (devices busy) says nothing either.
	createRun(t, fw, "c-third", otav1.RunCanceled, sha, otav1.ReasonCanceled)
	createRun(t, fw, "d-fourth", otav1.RunFailed, sha, otav1.ReasonInconclusive)
	waitCampaigns(t, ns, "fw", 4)
	stableResourceVersion(t, ns, "fw")
	waitVerification(t, ns, "fw", otav1.VerificationVerified, "b-second")
}

func TestFirmwareInconclusiveRunDoesNotFail(t *testing.T) {
	ns := newNamespace(t, "fw-inconclusive-")
	createProduct(t, ns, "prod", ns, "mcu")
	createFirmware(t, ns, "fw", putSourceObject(t, ns+"/v1.bin", image{seed: 22, size: 1 << 16}))
	fw := waitFirmwareReady(t, ns, "fw")
	createRun(t, fw, "busy", otav1.RunFailed, fw.Status.Artifact.SHA256, otav1.ReasonInconclusive)
	createRun(t, fw, "other-image", otav1.RunSucceeded, "0000000000000000000000000000000000000000000000000000000000000000", otav1.ReasonSucceeded)
	waitCampaigns(t, ns, "fw", 2)
	stableResourceVersion(t, ns, "fw")
	waitVerification(t, ns, "fw", otav1.VerificationUnverified, "")
}

// A Firmware deleted and created again with another image under the same
// name starts Unverified, though the old run that verified the old image
// is still there (envtest runs no garbage collector).
func TestFirmwareRecreatedIsUnverified(t *testing.T) {
	ns := newNamespace(t, "fw-recreate-")
	createProduct(t, ns, "prod", ns, "mcu")
	createFirmware(t, ns, "fw", putSourceObject(t, ns+"/s1.bin", image{seed: 23, size: 1 << 16}))
	fw := waitFirmwareReady(t, ns, "fw")
	createRun(t, fw, "s1-run", otav1.RunSucceeded, fw.Status.Artifact.SHA256, otav1.ReasonSucceeded)
	waitVerification(t, ns, "fw", otav1.VerificationVerified, "s1-run")

	if err := suite.k8s.Delete(t.Context(), fw); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		err := suite.k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: "fw"}, &otav1.Firmware{})
		return err != nil, "old Firmware still there"
	})
	createFirmware(t, ns, "fw", putSourceObject(t, ns+"/s2.bin", image{seed: 24, size: 1 << 16}))
	fw2 := waitFirmwareReady(t, ns, "fw")
	fw2 = waitVerification(t, ns, "fw", otav1.VerificationUnverified, "")
	if imageVerified(fw2) {
		t.Errorf("recreated Firmware counts as verified: %+v", fw2.Status.Verification)
	}
}
