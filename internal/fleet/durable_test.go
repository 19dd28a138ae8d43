package fleet

import (
	"context"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/protocol"
)

// recordedState reads a device's task state in a campaign from the
// UpgradeSlices on the API server, "" when none records it.
func recordedState(t *testing.T, ns, campaign, device string) otav1.TaskState {
	t.Helper()
	var list otav1.UpgradeSliceList
	if err := cp.Client.List(context.Background(), &list, client.InNamespace(ns),
		client.MatchingLabels{otav1.LabelCampaign: campaign}); err != nil {
		t.Fatal(err)
	}
	for _, s := range list.Items {
		for _, tk := range s.Tasks {
			if tk.Device == device {
				return tk.State
			}
		}
	}
	return ""
}

// A push reaches a device only once its NOTIFIED state is on the API
// server: a crash right after the push cannot forget it and push again.
func TestPushOnlyOnceNotifiedIsWritten(t *testing.T) {
	v := newEnv(t)
	devs := names("d", 20)
	v.devices(ignores, v1, devs...)
	var mu sync.Mutex
	seen := map[string]otav1.TaskState{}
	v.sim.mu.Lock()
	v.sim.onPush = func(dn string) {
		st := recordedState(t, v.ns, "b", dn)
		mu.Lock()
		seen[dn] = st
		mu.Unlock()
	}
	v.sim.mu.Unlock()
	v.upsert(v.spec("b", "default", "2.0.0"))
	v.waitFor("b", "all pushed", func(s Status) bool { return s.Counts.Notified == 20 })
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == len(devs) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	mu.Lock()
	defer mu.Unlock()
	for _, dn := range devs {
		if seen[dn] != otav1.TaskNotified {
			t.Errorf("device %s was pushed while the API server recorded its task as %q, want NOTIFIED", dn, seen[dn])
		}
	}
}

// A device's report is acknowledged (the durable function returns) only
// once what it changed is on the API server.
func TestReportDurableOnlyOnceWritten(t *testing.T) {
	v := newEnv(t)
	v.devices(ignores, v1, "a", "b")
	v.upsert(v.spec("b", "default", "2.0.0"))
	v.waitFor("b", "pushed", func(s Status) bool { return s.Counts.Notified == 2 })
	durable := v.e.HandleBatch(context.Background(), []protocol.Message{
		{Kind: protocol.KindInform, ProductKey: v.pk, DeviceName: "a", Module: "default", Version: "2.0.0"}})
	if durable == nil {
		t.Fatal("an inform that ended a task needs no write, says HandleBatch")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := durable(ctx); err != nil {
		t.Fatal(err)
	}
	if st := recordedState(t, v.ns, "b", "a"); st != otav1.TaskSucceeded {
		t.Fatalf("durable returned while the API server records %q for the device, want SUCCEEDED", st)
	}
	// The same report again changes nothing: nothing to wait for.
	if again := v.e.HandleBatch(context.Background(), []protocol.Message{
		{Kind: protocol.KindInform, ProductKey: v.pk, DeviceName: "a", Module: "default", Version: "2.0.0"}}); again != nil {
		t.Error("a repeated inform that changed nothing waits for a write")
	}
}

// A device's first report registers it without waiting for a write (it
// reports again on its next connect); a changed version waits.
func TestOnlyChangedVersionsWaitForTheirWrite(t *testing.T) {
	v := newEnv(t)
	first := v.e.HandleBatch(context.Background(), []protocol.Message{
		{Kind: protocol.KindInform, ProductKey: v.pk, DeviceName: "new", Module: "default", Version: "1.0.0"}})
	if first != nil {
		t.Error("a new device's first report waits for a write")
	}
	changed := v.e.HandleBatch(context.Background(), []protocol.Message{
		{Kind: protocol.KindInform, ProductKey: v.pk, DeviceName: "new", Module: "default", Version: "1.1.0"}})
	if changed == nil {
		t.Fatal("a changed version is acknowledged before it is written")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := changed(ctx); err != nil {
		t.Fatal(err)
	}
	var list otav1.DeviceSliceList
	if err := cp.Client.List(ctx, &list, client.InNamespace(v.ns)); err != nil {
		t.Fatal(err)
	}
	if got := sliceDevices(list.Items, v.pk); got != "new[default=1.1.0]" {
		t.Fatalf("DeviceSlices hold %q once the report is durable, want the new version", got)
	}
}

// A failure a device reports after a takeover, before the campaign's spec
// (and so its retry policy) is back, is retried if the policy allows it,
// and final otherwise (found by the chaos harness).
func TestFailureBeforeTheSpecFollowsTheRetryPolicy(t *testing.T) {
	for _, retries := range []int32{1, 0} {
		v := newEnv(t)
		v.devices(ignores, v1, "a", "b")
		s := v.spec("b", "default", "2.0.0")
		s.RetryCount, s.RetryInterval = retries, 10*time.Millisecond
		v.upsert(s)
		v.waitFor("b", "pushed", func(s Status) bool { return s.Counts.Notified == 2 })
		v.restart()
		v.e.HandleBatch(context.Background(), []protocol.Message{{Kind: protocol.KindProgress, ProductKey: v.pk,
			DeviceName: "a", Module: "default", Step: -2, Desc: "download failed"}})
		s.SelectionComplete = true
		v.upsert(s)
		if retries == 0 {
			st := v.waitFor("b", "a final failure", func(s Status) bool { return s.Counts.Failed == 1 })
			if st.Counts.Queued != 0 {
				t.Fatalf("no retries allowed: %+v", st.Counts)
			}
			continue
		}
		v.waitFor("b", "a retry", func(s Status) bool {
			v.sim.mu.Lock()
			defer v.sim.mu.Unlock()
			return s.Counts.Notified == 2 && s.Counts.Failed == 0 && v.sim.pushes["a"] == 2
		})
	}
}
