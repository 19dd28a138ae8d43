package fleet

import (
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
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
