package fleet

import (
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
