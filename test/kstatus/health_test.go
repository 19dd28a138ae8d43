package kstatus

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// health is what a user expects GitOps tools to say about an object.
type health struct {
	kstatus status.Status
	argo    string
	// message, if set, must appear in both tools' messages.
	message string
}

var (
	inProgress = health{kstatus: status.InProgressStatus, argo: "Progressing"}
	current    = health{kstatus: status.CurrentStatus, argo: "Healthy"}
	failed     = health{kstatus: status.FailedStatus, argo: "Degraded"}
)

func with(h health, argo, message string) health {
	h.argo, h.message = argo, message
	return h
}

// expected maps each fixture in testdata to its health. A rollout that can
// still finish by itself is in progress; one that needs a human to change
// something has failed (aborted, canceled, image refused or unverified);
// pauses are in progress for kstatus, which has no word for them, and
// Suspended for Argo CD when only a human ends them.
var expected = map[string]health{
	"upgradebatch-scheduled":           inProgress,
	"upgradebatch-firmware-verifying":  inProgress,
	"upgradebatch-firmware-unverified": failed,
	"upgradebatch-firmware-failed":     failed,
	"upgradebatch-running":             inProgress,
	"upgradebatch-wave-timed-pause":    with(inProgress, "Progressing", "paused after wave 2 until 2026"),
	"upgradebatch-wave-until-promoted": with(inProgress, "Suspended", "until promoted"),
	"upgradebatch-paused":              with(inProgress, "Suspended", "paused"),
	"upgradebatch-completed":           current,
	"upgradebatch-aborted":             with(failed, "Degraded", "over the 5% limit"),
	"upgradebatch-canceled":            failed,
	// A soak and a maintenance window end by themselves; a schedule that
	// does not parse needs someone to fix it.
	"upgradebatch-wave-soaking":       with(inProgress, "Progressing", "40 devices soaking"),
	"upgradebatch-outside-window":     with(inProgress, "Progressing", "wait for the maintenance window opening at 2026-12-02T02:00:00Z"),
	"upgradebatch-aborted-on-reverts": with(failed, "Degraded", "devices whose soak ended reverted"),
	"upgradebatch-invalid-window":     with(failed, "Degraded", "does not read as cron"),
	"verificationrun-pending":         inProgress,
	"verificationrun-running":         inProgress,
	"verificationrun-succeeded":       current,
	"verificationrun-failed":          with(failed, "Degraded", "lab-plug-02"),
	"verificationrun-canceled":        failed,
	"firmware-stored":                 current,
	"firmware-verifying":              inProgress,
	"firmware-verified":               current,
	"firmware-verification-failed":    with(failed, "Degraded", "FlashFailed"),
	"firmware-waiting-for-upload":     inProgress,
	"firmware-digest-mismatch":        failed,
	"product-with-devices":            current,
	"product-duplicate-key":           failed,
}

func TestHealthOfEveryKindInEveryPhase(t *testing.T) {
	script, err := os.ReadFile(healthScript)
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) != len(expected) {
		t.Fatalf("%d fixtures in testdata for %d expectations (%v)", len(files), len(expected), err)
	}
	ns := newNamespace(t)
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		want, ok := expected[name]
		if !ok {
			t.Errorf("%s: no expected health", file)
			continue
		}
		t.Run(name, func(t *testing.T) {
			obj := applyFixture(t, ns, file)
			checkHealth(t, obj, string(script), want)
		})
	}
}

// TestNewGenerationIsInProgress: a change pushed from git counts as in
// progress until the controller has observed it, however finished the
// object was.
func TestNewGenerationIsInProgress(t *testing.T) {
	script, err := os.ReadFile(healthScript)
	if err != nil {
		t.Fatal(err)
	}
	obj := applyFixture(t, newNamespace(t), "testdata/upgradebatch-completed.yaml")
	if err := unstructured.SetNestedField(obj.Object, true, "spec", "paused"); err != nil {
		t.Fatal(err)
	}
	if err := cp.Client.Update(t.Context(), obj); err != nil {
		t.Fatal(err)
	}
	if obj.GetGeneration() != 2 {
		t.Fatalf("generation %d after a spec change, want 2", obj.GetGeneration())
	}
	checkHealth(t, obj, string(script), with(inProgress, "Progressing", "generation"))
}

// applyFixture creates the fixture's object, then writes its status through
// the status subresource as the reconcilers do, and returns what the API
// server kept: a field the CRD schema prunes would show here.
func applyFixture(t *testing.T, ns, file string) *unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	fixture := decodeFixture(t, data)
	obj := fixture.DeepCopy()
	obj.SetNamespace(ns)
	delete(obj.Object, "status")
	if err := cp.Client.Create(t.Context(), obj); err != nil {
		t.Fatalf("creating %s: %v", file, err)
	}
	if obj.GetGeneration() != fixture.GetGeneration() {
		t.Fatalf("created at generation %d; the fixture's status observed %d", obj.GetGeneration(), fixture.GetGeneration())
	}
	obj.Object["status"] = fixture.Object["status"]
	if err := cp.Client.Status().Update(t.Context(), obj); err != nil {
		t.Fatalf("writing the status of %s: %v", file, err)
	}
	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(obj.GroupVersionKind())
	if err := cp.Client.Get(t.Context(), client.ObjectKeyFromObject(obj), got); err != nil {
		t.Fatal(err)
	}
	return got
}

// decodeFixture decodes as the API machinery does, with integers as int64
// (a plain YAML decode gives float64, which metadata accessors refuse).
func decodeFixture(t *testing.T, data []byte) *unstructured.Unstructured {
	t.Helper()
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(js); err != nil {
		t.Fatal(err)
	}
	return u
}

func checkHealth(t *testing.T, obj *unstructured.Unstructured, script string, want health) {
	t.Helper()
	res, err := status.Compute(obj)
	if err != nil {
		t.Fatalf("kstatus: %v", err)
	}
	if res.Status != want.kstatus || !strings.Contains(res.Message, want.message) {
		t.Errorf("kstatus: %s %q, want %s with %q", res.Status, res.Message, want.kstatus, want.message)
	}
	argo, msg, err := argoHealth(script, obj.Object)
	if err != nil {
		t.Fatalf("Argo CD health check: %v", err)
	}
	if argo != want.argo || !strings.Contains(msg, want.message) {
		t.Errorf("Argo CD: %s %q, want %s with %q", argo, msg, want.argo, want.message)
	}
}
