package crd

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// TestHandWrittenManifestsRefused sends manifests as a person writes them,
// values a typed Go client cannot even express (a duration "soon"), and
// checks that the API server's answer says what to change rather than how
// CEL failed.
func TestHandWrittenManifestsRefused(t *testing.T) {
	ns := newNamespace(t)
	cases := []struct {
		name, kind, spec, want string
	}{
		{"timeout soon", "UpgradeBatch", `{firmware: fw, timeout: soon}`,
			"timeout must be a duration such as 90s, 10m or 1h30m, not soon"},
		{"retry interval in words", "UpgradeBatch", `{firmware: fw, retry: {count: 1, interval: 5 minutes}}`,
			"retry.interval must be a duration such as 90s, 10m or 1h30m, not 5 minutes"},
		{"retry interval -5m", "UpgradeBatch", `{firmware: fw, retry: {count: 1, interval: -5m}}`,
			"retry.interval must be at least 1s, not -5m"},
		{"retry interval 0s", "UpgradeBatch", `{firmware: fw, retry: {count: 1, interval: 0s}}`,
			"retry.interval must be at least 1s, not 0s"},
		{"wave pause -5m", "UpgradeBatch", `{firmware: fw, waves: [{percent: 10, pause: {duration: -5m}}, {percent: 100}]}`,
			"pause.duration must be at least 1s, not -5m"},
		{"wave pause in days", "UpgradeBatch", `{firmware: fw, waves: [{percent: 10, pause: {duration: 1d}}, {percent: 100}]}`,
			"pause.duration must be a duration such as 90s, 10m or 1h30m, not 1d"},
		{"empty tag key", "UpgradeBatch", `{firmware: fw, tags: {'': x}}`, "tag keys must not be empty"},
		{"reserved tag keys", "UpgradeBatch", `{firmware: fw, tags: {_ed25519_signature: forged, _package_udi: injected}}`,
			"tag keys starting with _ are reserved"},
		{"run timeout soon", "VerificationRun", `{firmware: fw, devices: [d1], timeout: soon}`,
			"timeout must be a duration such as 90s, 10m or 1h30m, not soon"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := &unstructured.Unstructured{Object: map[string]any{}}
			spec := map[string]any{}
			if err := yaml.Unmarshal([]byte(tc.spec), &spec); err != nil {
				t.Fatal(err)
			}
			obj.Object["spec"] = spec
			obj.SetAPIVersion(otav1.GroupVersion.String())
			obj.SetKind(tc.kind)
			obj.SetName(fmt.Sprintf("hand-%d", i))
			obj.SetNamespace(ns)
			err := cp.Client.Create(context.Background(), obj)
			wantRefused(t, err, tc.want)
			if err != nil && strings.Contains(err.Error(), "conversion") {
				t.Errorf("the message shows CEL's internals: %v", err)
			}
		})
	}
}

// TestValidDurationsAccepted guards the duration rule against refusing
// what Go's clients write (time.Duration.String gives "1h0m0s").
func TestValidDurationsAccepted(t *testing.T) {
	ns := newNamespace(t)
	for i, spec := range []string{
		`{firmware: fw, timeout: 1h0m0s, retry: {count: 1, interval: 1m30s}}`,
		`{firmware: fw, timeout: 90m, retry: {count: 1, interval: 1.5s}}`,
		`{firmware: fw, waves: [{percent: 10, pause: {duration: 1s}}, {percent: 100, pause: {duration: 2h}}]}`,
	} {
		obj := &unstructured.Unstructured{Object: map[string]any{}}
		m := map[string]any{}
		if err := yaml.Unmarshal([]byte(spec), &m); err != nil {
			t.Fatal(err)
		}
		obj.Object["spec"] = m
		obj.SetAPIVersion(otav1.GroupVersion.String())
		obj.SetKind("UpgradeBatch")
		obj.SetName(fmt.Sprintf("ok-%d", i))
		obj.SetNamespace(ns)
		if err := cp.Client.Create(context.Background(), obj); err != nil {
			t.Errorf("%s refused: %v", spec, err)
		}
	}
}

// TestFinishedRecordsImmutable: what a finished run verified, and the sign
// method a verified image was tested with, cannot be edited afterwards;
// before that both can.
func TestFinishedRecordsImmutable(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()

	vr := validRun()
	vr.Name, vr.Namespace = "finished", ns
	vr.Spec.SourceVersions = []string{"1.0.0"}
	mustCreate(t, vr)
	vr.Spec.SourceVersions = []string{"1.0.1"}
	if err := cp.Client.Update(ctx, vr); err != nil {
		t.Fatalf("sourceVersions of a pending run refused: %v", err)
	}
	vr.Status.Phase = otav1.RunSucceeded
	if err := cp.Client.Status().Update(ctx, vr); err != nil {
		t.Fatal(err)
	}
	vr.Spec.SourceVersions = []string{"0.9.0"}
	wantRefused(t, cp.Client.Update(ctx, vr), "spec.sourceVersions cannot change after the run finished (Succeeded)")

	fw := validFirmware()
	fw.Name, fw.Namespace = "verified", ns
	mustCreate(t, fw)
	fw.Spec.SignMethod = otav1.SignMethodSHA256
	if err := cp.Client.Update(ctx, fw); err != nil {
		t.Fatalf("signMethod of an unverified image refused: %v", err)
	}
	fw.Status.Verification.State = otav1.VerificationVerified
	if err := cp.Client.Status().Update(ctx, fw); err != nil {
		t.Fatal(err)
	}
	fw.Spec.SignMethod = otav1.SignMethodMD5
	wantRefused(t, cp.Client.Update(ctx, fw), "spec.signMethod cannot change once the image is Verified")
}

// TestVerificationColumnNeverBlank: a new Firmware reads Unverified in the
// Verification printer column before any controller has written status.
func TestVerificationColumnNeverBlank(t *testing.T) {
	ns := newNamespace(t)
	fw := validFirmware()
	fw.Name, fw.Namespace = "fresh", ns
	mustCreate(t, fw)
	got := &otav1.Firmware{}
	if err := cp.Client.Get(context.Background(), client.ObjectKeyFromObject(fw), got); err != nil {
		t.Fatal(err)
	}
	if got.Status.Verification.State != otav1.VerificationUnverified {
		t.Fatalf("status.verification.state = %q, want Unverified", got.Status.Verification.State)
	}
}

func mustCreate(t *testing.T, obj client.Object) {
	t.Helper()
	if err := cp.Client.Create(context.Background(), obj); err != nil {
		t.Fatalf("valid %T refused: %v", obj, err)
	}
}
