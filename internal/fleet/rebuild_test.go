package fleet

import (
	"context"
	"reflect"
	"testing"

	"github.com/go-logr/logr"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/protocol"
	"github.com/otafleet/otafleet/internal/rollout"
)

func TestRebuildFollowsTheProductReconciler(t *testing.T) {
	ready := func(status metav1.ConditionStatus, reason string) *otav1.Product {
		p := &otav1.Product{}
		p.Status.Conditions = []metav1.Condition{{Type: otav1.ConditionReady, Status: status, Reason: reason}}
		return p
	}
	cases := []struct {
		name          string
		p             *otav1.Product
		owns, refused bool
	}{
		{"decided owner", ready(metav1.ConditionTrue, otav1.ReasonSucceeded), true, false},
		{"refused its key", ready(metav1.ConditionFalse, otav1.ReasonDuplicateProduct), false, true},
		{"waiting for something else", ready(metav1.ConditionFalse, otav1.ReasonProgressing), false, false},
		{"not reconciled yet", &otav1.Product{}, false, false},
	}
	for _, c := range cases {
		if owns, ref := ownsKey(c.p), refused(c.p); owns != c.owns || ref != c.refused {
			t.Errorf("%s: ownsKey %v refused %v, want %v %v", c.name, owns, ref, c.owns, c.refused)
		}
	}
}

func TestInSelectionOrder(t *testing.T) {
	c := &campaign{}
	slice := func(name string) *upgradeSlice {
		s := &upgradeSlice{name: name}
		c.slices = append(c.slices, s)
		return s
	}
	// As the API server lists them: by name.
	s0, s1, s10, s2 := slice("b-0"), slice("b-1"), slice("b-10"), slice("b-2")
	task := func(name string, wave int32, s *upgradeSlice) *task {
		t := &task{dev: &device{name: name}, wave: wave, slice: s}
		c.queue = append(c.queue, t)
		return t
	}
	task("w3", 3, s10)
	task("w2-late", 2, s2)
	task("w2-early", 2, s0)
	task("w1", 1, s1)
	inSelectionOrder(c)
	var got []string
	for _, s := range c.slices {
		got = append(got, s.name)
	}
	for _, t := range c.queue {
		got = append(got, t.dev.name)
	}
	want := []string{"b-0", "b-1", "b-2", "b-10", "w1", "w2-early", "w2-late", "w3"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

// A task written without its device's DeviceSlice (the last leader stopped
// between the two writes): an active task's device joins the inventory, so
// that its next report reaches the task; a finished task of a device never
// seen (a List name) does not.
func TestLoadedTaskWithoutItsDevice(t *testing.T) {
	e := New(nil, nil, nil, staticSigner{}, Options{}, logr.Discard())
	p := &otav1.Product{Spec: otav1.ProductSpec{ProductKey: "pk"}}
	p.Name, p.Namespace, p.UID = "p", "ns", "uid"
	e.SyncProduct(p)
	s := &otav1.UpgradeSlice{ProductKey: "pk", Campaign: otav1.CampaignReference{Kind: otav1.KindUpgradeBatch, Name: "b"},
		Module: "default", Tasks: []otav1.DeviceTask{
			{Device: "upgrading", State: otav1.TaskInProgress, Step: 100, Attempt: 1, FromVersion: "1.0.0"},
			{Device: "unknown", State: otav1.TaskFailed, Reason: rollout.ReasonNotFound},
		}}
	s.Name, s.Namespace = "b-0", "ns"
	e.mu.Lock()
	e.loadUpgradeSlice(s)
	e.unlock()
	pr := e.products["pk"]
	d := pr.devices["upgrading"]
	if d == nil || d.task == nil || d.task.state != otav1.TaskInProgress || d.slice == nil || !d.slice.dirty {
		t.Fatalf("the upgrading device is %+v; want it in the inventory, holding its task, its slice to write", d)
	}
	if pr.devices["unknown"] != nil {
		t.Error("a device the batch failed as unknown joined the inventory")
	}
	ref := otav1.CampaignReference{Kind: otav1.KindUpgradeBatch, Name: "b"}
	e.ready = true
	close(e.readyCh)
	if _, err := e.Upsert(Spec{Ref: ref, Namespace: "ns", ProductKey: "pk", Module: "default", Target: "2.0.0",
		SelectionComplete: true, Image: Image{Bucket: "b", Key: "k", Size: 1, MD5: "0123456789abcdef0123456789abcdef"}}); err != nil {
		t.Fatal(err)
	}
	e.HandleBatch(context.Background(), []protocol.Message{informOf("pk", "upgrading", "default", "2.0.0")})
	if st, _ := e.Status("ns", ref); st.Counts.Succeeded != 1 || st.Counts.InProgress != 0 {
		t.Errorf("after the device's inform of the target: %+v", st.Counts)
	}
}
