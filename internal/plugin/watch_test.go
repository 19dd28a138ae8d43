package plugin

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// syncBuffer is written by a command running in a goroutine while the test
// reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// running is a command started in the background.
type running struct {
	out  *syncBuffer
	done chan error
}

// startOTA runs the plugin in the background, as a pipeline step would.
func startOTA(ctx context.Context, ns string, args ...string) *running {
	r := &running{out: &syncBuffer{}, done: make(chan error, 1)}
	cmd := NewRootCommand(genericiooptions.IOStreams{In: strings.NewReader(""), Out: r.out, ErrOut: r.out})
	cmd.SetArgs(append([]string{"--kubeconfig", kubeconfig, "-n", ns}, args...))
	go func() { r.done <- cmd.ExecuteContext(ctx) }()
	return r
}

// waitOutput polls until the output holds want; the command must still run.
func (r *running) waitOutput(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(r.out.String(), want) {
		select {
		case err := <-r.done:
			t.Fatalf("the command ended (%v) before printing %q:\n%s", err, want, r.out.String())
		case <-time.After(50 * time.Millisecond): // polling interval
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the output within 30s:\n%s", want, r.out.String())
		}
	}
}

// wait returns the command's error once it ended.
func (r *running) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		return err
	case <-time.After(time.Minute):
		t.Fatalf("the command did not end within a minute:\n%s", r.out.String())
		return nil
	}
}

// watchUntil starts `status batch -w` on a running batch, waits for its
// first frame (drawn once the watch is open, so no later change is missed),
// then writes the final status and returns the command's error.
func watchUntil(t *testing.T, final otav1.UpgradeBatchStatus) (string, error) {
	ctx := testCtx(t)
	ns := newNamespace(t, ctx)
	mustCreate(t, ctx, newBatch(ns, "rollout"))
	setStatus(t, getUB(t, ns, "rollout"), runningStatus(time.Now().Add(-time.Minute)))
	r := startOTA(ctx, ns, "status", "batch", "rollout", "-w", "--timeout", "1m")
	r.waitOutput(t, "Phase:      Running")
	setStatus(t, getUB(t, ns, "rollout"), final)
	err := r.wait(t)
	return r.out.String(), err
}

func finalStatus(phase otav1.BatchPhase, stalled string) otav1.UpgradeBatchStatus {
	st := runningStatus(time.Now().Add(-time.Minute))
	st.Phase, st.CurrentWave = phase, 2
	st.Counts = otav1.TaskCounts{Total: 100, Succeeded: 60, Failed: 40}
	if stalled != "" {
		st.Conditions = []metav1.Condition{{Type: otav1.ConditionStalled, Status: metav1.ConditionTrue,
			Reason: otav1.ReasonAborted, Message: stalled, LastTransitionTime: metav1.Now()}}
	}
	return st
}

func TestStatusWatchExitsZeroOnCompletion(t *testing.T) {
	out, err := watchUntil(t, finalStatus(otav1.BatchCompleted, ""))
	if err != nil {
		t.Fatalf("completed batch: %v", err)
	}
	if strings.Count(out, "Name:") < 2 || !strings.Contains(out, "Phase:      Completed") {
		t.Fatalf("want several frames ending Completed, got\n%s", out)
	}
}

func TestStatusWatchFailsOnAbortWithTheReason(t *testing.T) {
	out, err := watchUntil(t, finalStatus(otav1.BatchAborted, "40 of 100 finished devices failed, over the 5% limit"))
	if err == nil {
		t.Fatalf("aborted batch: no error\n%s", out)
	}
	want := "aborted: 40 of 100 finished devices failed, over the 5% limit"
	if msg := err.Error(); !strings.Contains(msg, want) || strings.Contains(msg, "\n") {
		t.Errorf("error %q, want one line with %q", msg, want)
	}
}

func TestStatusWatchFailsOnCancel(t *testing.T) {
	_, err := watchUntil(t, finalStatus(otav1.BatchCanceled, ""))
	if err == nil || !strings.Contains(err.Error(), "Canceled") {
		t.Errorf("canceled batch: error %v, want one naming Canceled", err)
	}
}

func TestStatusWatchTimesOut(t *testing.T) {
	ctx := testCtx(t)
	ns := newNamespace(t, ctx)
	mustCreate(t, ctx, newBatch(ns, "rollout"))
	setStatus(t, getUB(t, ns, "rollout"), runningStatus(time.Now().Add(-time.Minute)))
	start := time.Now()
	r := startOTA(ctx, ns, "status", "batch", "rollout", "-w", "--timeout", "2s")
	err := r.wait(t)
	if err == nil || !strings.Contains(err.Error(), "timed out after 2s") || !strings.Contains(err.Error(), "phase Running, wave 1/2, 40/100 finished") {
		t.Fatalf("error %v, want a timeout saying where the batch stood", err)
	}
	if time.Since(start) < 2*time.Second {
		t.Errorf("returned after %s, before the timeout", time.Since(start))
	}
}

func TestStatusWatchFailsWhenTheBatchIsDeleted(t *testing.T) {
	ctx := testCtx(t)
	ns := newNamespace(t, ctx)
	mustCreate(t, ctx, newBatch(ns, "rollout"))
	r := startOTA(ctx, ns, "status", "batch", "rollout", "-w")
	r.waitOutput(t, "Name:       rollout")
	if err := cp.Client.Delete(ctx, getUB(t, ns, "rollout")); err != nil {
		t.Fatal(err)
	}
	if err := r.wait(t); err == nil || !strings.Contains(err.Error(), "deleted") {
		t.Errorf("error %v, want one saying the batch was deleted", err)
	}
}
