package plugin

import (
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// setStatus writes a batch's status as the operator would.
func setStatus(t *testing.T, ub *otav1.UpgradeBatch, st otav1.UpgradeBatchStatus) {
	t.Helper()
	ub.Status = st
	if err := cp.Client.Status().Update(testCtx(t), ub); err != nil {
		t.Fatal(err)
	}
}

func getUB(t *testing.T, ns, name string) *otav1.UpgradeBatch {
	t.Helper()
	ub := &otav1.UpgradeBatch{}
	if err := cp.Client.Get(testCtx(t), client.ObjectKey{Namespace: ns, Name: name}, ub); err != nil {
		t.Fatal(err)
	}
	return ub
}

func TestBatchVerbsChangeSpecOnly(t *testing.T) {
	ctx := testCtx(t)
	ns := newNamespace(t, ctx)
	ub := newBatch(ns, "rollout")
	ub.Spec.Waves = []otav1.Wave{{Percent: 10, Pause: &otav1.WavePause{}}, {Percent: 50, Pause: &otav1.WavePause{}}, {Percent: 100}}
	mustCreate(t, ctx, ub)
	running := otav1.UpgradeBatchStatus{Phase: otav1.BatchRunning, CurrentWave: 2, Waves: 3,
		Counts: otav1.TaskCounts{Total: 10, Succeeded: 4}}
	setStatus(t, ub, running)

	run := func(args ...string) string {
		t.Helper()
		out, _, err := kubectlOTA(ctx, kubeconfig, ns, args...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return out
	}

	run("pause", "rollout")
	if got := getUB(t, ns, "rollout"); !got.Spec.Paused {
		t.Fatal("pause did not set spec.paused")
	}
	run("resume", "rollout")
	if got := getUB(t, ns, "rollout"); got.Spec.Paused {
		t.Fatal("resume did not clear spec.paused")
	}

	if out := run("promote", "rollout"); !strings.Contains(out, "wave 2/3") {
		t.Fatalf("promote said %q", out)
	}
	got := getUB(t, ns, "rollout")
	if got.Spec.PromotedWaves != 2 {
		t.Fatalf("promotedWaves %d, want 2", got.Spec.PromotedWaves)
	}
	if len(got.Spec.Waves) != 3 || got.Spec.Waves[0].Pause == nil {
		t.Fatalf("promote changed other spec fields: %+v", got.Spec.Waves)
	}

	if _, _, err := kubectlOTA(ctx, kubeconfig, ns, "cancel", "rollout", "--states", "DONE"); err == nil {
		t.Fatal("an inactive state must be refused")
	}
	run("cancel", "rollout", "--states", "queued,CONFIRM")
	got = getUB(t, ns, "rollout")
	if got.Spec.Cancel == nil || !slices.Equal(got.Spec.Cancel.States, []otav1.TaskState{otav1.TaskQueued, otav1.TaskConfirm}) {
		t.Fatalf("spec.cancel %+v", got.Spec.Cancel)
	}
	if _, _, err := kubectlOTA(ctx, kubeconfig, ns, "resume", "rollout"); err == nil {
		t.Fatal("resuming a canceled batch must fail")
	}
	// Status is the operator's: none of the verbs may touch it.
	if got.Status.Phase != running.Phase || got.Status.CurrentWave != 2 || got.Status.Counts != running.Counts {
		t.Fatalf("status changed: %+v", got.Status)
	}
	owned := false
	for _, mf := range got.ManagedFields {
		owned = owned || (mf.Manager == string(fieldOwner) && mf.Subresource == "")
	}
	if !owned {
		t.Fatal("spec changes are not attributed to kubectl-ota in managedFields")
	}
}

func TestBatchVerbsRefuseFinishedOrUnstarted(t *testing.T) {
	ctx := testCtx(t)
	ns := newNamespace(t, ctx)
	done, fresh := newBatch(ns, "done"), newBatch(ns, "fresh")
	mustCreate(t, ctx, done, fresh)
	setStatus(t, done, otav1.UpgradeBatchStatus{Phase: otav1.BatchCompleted, CurrentWave: 1, Waves: 1})
	for _, verb := range []string{"pause", "resume", "promote", "cancel"} {
		if _, _, err := kubectlOTA(ctx, kubeconfig, ns, verb, "done"); err == nil || !strings.Contains(err.Error(), "Completed") {
			t.Fatalf("%s of a completed batch: %v", verb, err)
		}
	}
	if got := getUB(t, ns, "done"); got.Spec.Paused || got.Spec.Cancel != nil || got.Spec.PromotedWaves != 0 {
		t.Fatalf("a finished batch was changed: %+v", got.Spec)
	}
	if _, _, err := kubectlOTA(ctx, kubeconfig, ns, "promote", "fresh"); err == nil {
		t.Fatal("promoting a batch before its first wave must fail")
	}
	if _, _, err := kubectlOTA(ctx, kubeconfig, ns, "pause", "missing"); err == nil {
		t.Fatal("pausing a missing batch must fail")
	}
}

func TestConfirmPointsToTheAppAPI(t *testing.T) {
	ctx := testCtx(t)
	_, _, err := kubectlOTA(ctx, kubeconfig, "default", "confirm", "--batch", "b", "dev1")
	if err == nil || !strings.Contains(err.Error(), "app API") {
		t.Fatalf("confirm must fail and point to the app API, got %v", err)
	}
}
