package plugin

import (
	"bytes"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

func runningStatus(start time.Time) otav1.UpgradeBatchStatus {
	return otav1.UpgradeBatchStatus{
		Phase: otav1.BatchRunning, CurrentWave: 1, Waves: 2,
		StartTime: &metav1.Time{Time: start},
		Counts:    otav1.TaskCounts{Total: 100, Succeeded: 30, Failed: 10, InProgress: 20, Queued: 40},
		FailureReasons: []otav1.ReasonCount{
			{Reason: otav1.FailureDownload, Count: 7, Example: "http 403"},
			{Reason: otav1.FailureFlash, Count: 3},
		},
	}
}

func TestRenderBatch(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	ub := newBatch("ns", "rollout")
	ub.Status = runningStatus(now.Add(-40 * time.Second))
	var b bytes.Buffer
	renderBatch(&b, ub, now)
	out := b.String()
	// 40 finished in 40 s is 1 device/s; 60 left take a minute.
	for _, want := range []string{
		"Phase:      Running", "Wave:       1/2", "40/100 finished (40%)", "1.0 devices/s", "ETA 60s",
		"SUCCEEDED    [#########.....................]      30  30%",
		"FAILED       [###...........................]      10  10%",
		"QUEUED       [############..................]      40  40%",
		"CONFIRM      [..............................]       0   0%",
		`DownloadFailed             7  e.g. "http 403"`, "FlashFailed                3",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}

	ub.Status.Phase = otav1.BatchCompleted
	ub.Status.CompletionTime = &metav1.Time{Time: now}
	b.Reset()
	renderBatch(&b, ub, now)
	if strings.Contains(b.String(), "ETA") {
		t.Errorf("a finished batch has no ETA:\n%s", b.String())
	}

	fresh := newBatch("ns", "fresh")
	b.Reset()
	renderBatch(&b, fresh, now)
	if !strings.Contains(b.String(), "0/0 finished") || strings.Contains(b.String(), "devices/s") {
		t.Errorf("unstarted batch:\n%s", b.String())
	}
}

func TestBar(t *testing.T) {
	for _, tc := range []struct {
		n, total int64
		hashes   int
	}{{0, 0, 0}, {0, 10, 0}, {1, 1000, 1}, {5, 10, 15}, {10, 10, 30}, {20, 10, 30}} {
		if got := strings.Count(bar(tc.n, tc.total), "#"); got != tc.hashes {
			t.Errorf("bar(%d,%d) has %d #, want %d", tc.n, tc.total, got, tc.hashes)
		}
	}
}

func TestStatusBatchCommand(t *testing.T) {
	ctx := testCtx(t)
	ns := newNamespace(t, ctx)
	ub := newBatch(ns, "rollout")
	mustCreate(t, ctx, ub)
	setStatus(t, ub, runningStatus(time.Now().Add(-time.Minute)))
	out, _, err := kubectlOTA(ctx, kubeconfig, ns, "status", "batch", "rollout")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Name:       rollout", "Firmware:   plug-wifi-1.1.0", "40/100 finished",
		"IN_PROGRESS  [######........................]      20  20%", "DownloadFailed"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
}

// A batch with a soak and windows shows its soaking and reverted devices,
// the gate holding its wave and its next window.
func TestRenderBatchSoakAndWindow(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	ub := newBatch("ns", "rollout")
	ub.Status = otav1.UpgradeBatchStatus{
		Phase: otav1.BatchPaused, CurrentWave: 1, Waves: 2,
		Counts:   otav1.TaskCounts{Total: 100, Succeeded: 6, Reverted: 2, Soaking: 2, Queued: 90},
		WaveGate: &otav1.WaveGateStatus{Gate: otav1.GateSoak, Wave: 1, Message: "wave 1: 2 devices soaking until 2026-05-01T12:10:00Z"},
		Window:   &otav1.WindowStatus{NextOpen: &metav1.Time{Time: now.Add(3 * time.Hour)}},
	}
	var b bytes.Buffer
	renderBatch(&b, ub, now)
	out := b.String()
	for _, want := range []string{
		"8/100 finished",
		"REVERTED     [#.............................]       2   2%",
		"SOAKING      [#.............................]       2   2%",
		"Wave:       1/2 (held by its Soak gate: wave 1: 2 devices soaking until 2026-05-01T12:10:00Z)\n",
		"Window:     closed, opens 2026-05-01T15:00:00Z (in 3h)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	ub.Status.WaveGate = &otav1.WaveGateStatus{Gate: otav1.GateSuccessThreshold, Wave: 1, Message: "wave 1: 6 of 8 devices succeeded"}
	b.Reset()
	renderBatch(&b, ub, now)
	if want := "(held by its SuccessThreshold gate: wave 1: 6 of 8 devices succeeded; kubectl ota promote rollout)"; !strings.Contains(b.String(), want) {
		t.Errorf("missing %q in\n%s", want, b.String())
	}
}
