package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// reconcileVerification computes status.verification from the
// VerificationRuns this Firmware owns. The Firmware controller is its only
// writer: runs only report their own phase, so any number of them can run
// one after another or at once without fighting over the Firmware.
func (r *FirmwareReconciler) reconcileVerification(ctx context.Context, s *firmwareScope) error {
	fw := s.fw
	var runs otav1.VerificationRunList
	if err := r.List(ctx, &runs, client.InNamespace(fw.Namespace),
		client.MatchingFields{campaignFirmwareIndex: fw.Name}); err != nil {
		return err
	}
	sha := ""
	if fw.Status.Artifact != nil {
		sha = fw.Status.Artifact.SHA256
	}
	want := verificationFrom(fw.UID, sha, runs.Items)
	cur := fw.Status.Verification
	if cur.State == want.State && cur.Run == want.Run && cur.SHA256 == want.SHA256 &&
		cur.FirmwareUID == want.FirmwareUID && cur.Message == want.Message {
		return nil
	}
	now := metav1.Now()
	want.Time = &now
	fw.Status.Verification = want
	return nil
}

// verificationFrom is the verification rule (docs/spec/v1alpha1/firmwares.md):
//
//   - a run counts only when the Firmware with this UID owns it and it
//     pushed this image (status.sha256; not recorded yet while it starts);
//     an Inconclusive run never counts;
//   - a Succeeded run that counts verifies the image for good: no later
//     run, failed or canceled, takes that back;
//   - otherwise the newest counting run decides: Pending or Running is
//     Verifying, Failed is Failed; a Canceled run says nothing.
func verificationFrom(uid types.UID, sha string, runs []otav1.VerificationRun) otav1.Verification {
	out := otav1.Verification{State: otav1.VerificationUnverified, SHA256: sha, FirmwareUID: string(uid)}
	if sha == "" {
		return out
	}
	var counting []*otav1.VerificationRun
	for i := range runs {
		if runCounts(&runs[i], uid, sha) {
			counting = append(counting, &runs[i])
		}
	}
	// Newest first; names break ties in the one-second timestamps.
	slices.SortFunc(counting, func(a, b *otav1.VerificationRun) int {
		if c := b.CreationTimestamp.Compare(a.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(b.Name, a.Name)
	})
	for _, vr := range counting {
		if vr.Status.Phase == otav1.RunSucceeded {
			out.State, out.Run, out.Message = otav1.VerificationVerified, vr.Name, conditionText(vr.Status.Conditions)
			return out
		}
	}
	for _, vr := range counting {
		switch vr.Status.Phase {
		case otav1.RunFailed:
			out.State, out.Run, out.Message = otav1.VerificationFailed, vr.Name, conditionText(vr.Status.Conditions)
			return out
		case otav1.RunCanceled:
			continue
		default:
			out.State, out.Run = otav1.VerificationVerifying, vr.Name
			return out
		}
	}
	return out
}

func runCounts(vr *otav1.VerificationRun, uid types.UID, sha string) bool {
	if !ownedBy(vr, uid) {
		return false
	}
	if vr.Status.SHA256 != sha && (vr.Status.SHA256 != "" || isFinal(vr.Status.Phase)) {
		return false
	}
	c := apimeta.FindStatusCondition(vr.Status.Conditions, otav1.ConditionReady)
	return c == nil || c.Reason != otav1.ReasonInconclusive
}

func ownedBy(o metav1.Object, uid types.UID) bool {
	for _, ref := range o.GetOwnerReferences() {
		if ref.UID == uid && ref.Kind == "Firmware" {
			return true
		}
	}
	return false
}

// imageVerified reports whether fw's verification is about its current
// image and object: a state copied from an older image or an earlier
// Firmware of the same name does not let a batch push.
func imageVerified(fw *otav1.Firmware) bool {
	v := fw.Status.Verification
	return v.State == otav1.VerificationVerified && fw.Status.Artifact != nil &&
		v.SHA256 == fw.Status.Artifact.SHA256 && v.FirmwareUID == string(fw.UID)
}

// verificationText names the state for a waiting batch's message.
func verificationText(fw *otav1.Firmware) string {
	if fw.Status.Verification.State == otav1.VerificationVerified && !imageVerified(fw) {
		return fmt.Sprintf("%s for another image", otav1.VerificationVerified)
	}
	return string(orUnverified(fw.Status.Verification.State))
}
