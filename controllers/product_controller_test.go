package controllers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

func init() {
	registerForSuite(func(mgr ctrl.Manager) error {
		return (&ProductReconciler{Client: mgr.GetClient(), InventoryInterval: 200 * time.Millisecond}).SetupWithManager(mgr)
	})
}

func getProduct(t *testing.T, ns, name string) *otav1.Product {
	t.Helper()
	p := &otav1.Product{}
	if err := suite.k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func waitProductCondition(t *testing.T, ns, name, condType string, status metav1.ConditionStatus, reason string) *otav1.Product {
	t.Helper()
	var p *otav1.Product
	eventually(t, 30*time.Second, func() (bool, string) {
		p = getProduct(t, ns, name)
		c := apimeta.FindStatusCondition(p.Status.Conditions, condType)
		if c == nil {
			return false, fmt.Sprintf("no %s condition: %+v", condType, p.Status.Conditions)
		}
		return c.Status == status && c.Reason == reason, fmt.Sprintf("%s=%s %s: %s", condType, c.Status, c.Reason, c.Message)
	})
	return p
}

// Within the namespace that claimed a key, the oldest Product owns it and
// the next one takes over when it goes; naming it is no leak there.
func TestProductDuplicateKeyStalled(t *testing.T) {
	ns := newNamespace(t, "prod-dup-")
	key := "dup-" + ns[len(ns)-5:]
	first := createProduct(t, ns, "lamp", key)
	waitProductCondition(t, ns, "lamp", otav1.ConditionReady, metav1.ConditionTrue, otav1.ReasonSucceeded)

	createProduct(t, ns, "lamp-copy", key)
	p := waitProductCondition(t, ns, "lamp-copy", otav1.ConditionStalled, metav1.ConditionTrue, otav1.ReasonDuplicateProduct)
	if c := apimeta.FindStatusCondition(p.Status.Conditions, otav1.ConditionReady); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("duplicate Product Ready %+v, want False", c)
	}
	if msg := apimeta.FindStatusCondition(p.Status.Conditions, otav1.ConditionStalled).Message; !strings.Contains(msg, `"lamp"`) {
		t.Errorf("Stalled message %q does not name the owner lamp", msg)
	}
	// The owner is not disturbed.
	waitProductCondition(t, ns, "lamp", otav1.ConditionReady, metav1.ConditionTrue, otav1.ReasonSucceeded)

	// When the owner goes, the other Product of the namespace takes over.
	if err := suite.k8s.Delete(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	p = waitProductCondition(t, ns, "lamp-copy", otav1.ConditionReady, metav1.ConditionTrue, otav1.ReasonSucceeded)
	if c := apimeta.FindStatusCondition(p.Status.Conditions, otav1.ConditionStalled); c != nil {
		t.Errorf("Stalled still set: %+v", c)
	}
}
