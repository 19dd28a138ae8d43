package plugin

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

func newRun(ns, name string) *otav1.VerificationRun {
	return &otav1.VerificationRun{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       otav1.VerificationRunSpec{Firmware: "plug-wifi-1.1.0", Devices: []string{"t1", "t2", "t3"}},
	}
}

func TestRenderRun(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	vr := newRun("ns", "lab")
	vr.Status = otav1.VerificationRunStatus{
		Phase: otav1.RunRunning, StartTime: &metav1.Time{Time: now.Add(-time.Minute)},
		Counts: otav1.TaskCounts{Total: 2, Succeeded: 1, Failed: 1},
		Devices: []otav1.DeviceResult{
			{Name: "t1", State: otav1.TaskSucceeded, Step: 100, FromVersion: "1.0.0"},
			{Name: "t2", State: otav1.TaskFailed, Step: -2, FromVersion: "1.0.0", Reason: otav1.FailureDownload, Message: "http 403"},
		},
		Conditions: []metav1.Condition{{Type: otav1.ConditionReady, Status: metav1.ConditionFalse,
			Reason: otav1.ReasonProgressing, Message: "1 of 2 devices upgraded"}},
	}
	var b bytes.Buffer
	renderRun(&b, vr, now)
	out := b.String()
	for _, want := range []string{"Phase:      Running", "Progress:   1/3 succeeded", "DownloadFailed: http 403",
		"not selected yet", "Ready=False  Progressing: 1 of 2 devices upgraded"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
}

// TestReadyLineShowsStatus: a batch that is not Ready must not read
// "Ready: Progressing".
func TestReadyLineShowsStatus(t *testing.T) {
	ub := newBatch("ns", "rollout")
	ub.Status = runningStatus(time.Now())
	ub.Status.Conditions = []metav1.Condition{{Type: otav1.ConditionReady, Status: metav1.ConditionFalse,
		Reason: otav1.ReasonProgressing, Message: "wave 1 of 2"}}
	var b bytes.Buffer
	renderBatch(&b, ub, time.Now())
	if out := b.String(); strings.Contains(out, "Ready: Progressing") || !strings.Contains(out, "Ready=False  Progressing: wave 1 of 2") {
		t.Fatalf("ready line:\n%s", out)
	}
}

func TestCampaignFlag(t *testing.T) {
	for _, tc := range []struct {
		batch, run string
		kind       otav1.CampaignKind
		name       string
		bad        bool
	}{
		{batch: "b", kind: otav1.KindUpgradeBatch, name: "b"},
		{batch: "ub/b", kind: otav1.KindUpgradeBatch, name: "b"},
		{batch: "vr/r", kind: otav1.KindVerificationRun, name: "r"},
		{batch: "VerificationRun/r", kind: otav1.KindVerificationRun, name: "r"},
		{run: "r", kind: otav1.KindVerificationRun, name: "r"},
		{batch: "fw/x", bad: true},
		{batch: "b", run: "r", bad: true},
	} {
		d := &devicesOptions{batch: tc.batch, run: tc.run}
		kind, name, err := d.campaign()
		if (err != nil) != tc.bad || (!tc.bad && (kind != tc.kind || name != tc.name)) {
			t.Errorf("--batch %q --run %q: %s %q %v", tc.batch, tc.run, kind, name, err)
		}
	}
}

// TestRunCommands: `status run` and `devices --run` read a VerificationRun.
func TestRunCommands(t *testing.T) {
	ctx := testCtx(t)
	ns := newNamespace(t, ctx)
	vr := newRun(ns, "lab")
	mustCreate(t, ctx, vr,
		upgradeSlice(ns, "lab-1", "lab", otav1.KindVerificationRun,
			task("t1", otav1.TaskSucceeded, 100, 1, ""), task("t2", otav1.TaskFailed, -2, 1, otav1.FailureDownload)),
		upgradeSlice(ns, "ub-lab-1", "lab", otav1.KindUpgradeBatch, task("u1", otav1.TaskFailed, -1, 1, "x")),
	)
	vr.Status.Phase = otav1.RunFailed
	if err := cp.Client.Status().Update(ctx, vr); err != nil {
		t.Fatal(err)
	}
	out, _, err := kubectlOTA(ctx, kubeconfig, ns, "status", "run", "lab")
	if err != nil || !strings.Contains(out, "Phase:      Failed") {
		t.Fatalf("status run: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"--run", "lab"}, {"--batch", "vr/lab"}} {
		out, _, err = kubectlOTA(ctx, kubeconfig, ns, append([]string{"devices"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		if got := column(out); !slices.Equal(got, []string{"t1", "t2"}) {
			t.Fatalf("devices %v: %v\n%s", args, got, out)
		}
	}
}
