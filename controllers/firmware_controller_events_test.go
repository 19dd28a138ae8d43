package controllers

import (
	"fmt"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// occurrences counts the Events of reason about a Firmware, a series
// counting as its length.
func occurrences(t *testing.T, ns, name, reason string) int32 {
	t.Helper()
	var list eventsv1.EventList
	if err := suite.k8s.List(t.Context(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var n int32
	for _, ev := range list.Items {
		if ev.Regarding.Name != name || ev.Reason != reason {
			continue
		}
		n++
		if ev.Series != nil && ev.Series.Count > 1 {
			n += ev.Series.Count - 1
		}
	}
	return n
}

// A held deletion is announced once, however often the Firmware is
// reconciled while it waits.
func TestFirmwareInUseEventOnce(t *testing.T) {
	ns := newNamespace(t, "fw-inuse-event-")
	createProduct(t, ns, "prod", ns, "mcu")
	fw := createFirmware(t, ns, "fw", putSourceObject(t, ns+"/fw.bin", image{seed: 41, size: 64 << 10}))
	waitFirmwareReady(t, ns, "fw")
	vr := &otav1.VerificationRun{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "try"},
		Spec: otav1.VerificationRunSpec{Firmware: "fw", Devices: []string{"dev-1"}}}
	if err := suite.k8s.Create(t.Context(), vr); err != nil {
		t.Fatal(err)
	}
	setRunPhase(t, vr, otav1.RunRunning)
	eventually(t, 30*time.Second, func() (bool, string) {
		u := getFirmware(t, ns, "fw").Status.Usage
		return u.ActiveCampaigns == 1, fmt.Sprintf("usage %+v", u)
	})
	if err := suite.k8s.Delete(t.Context(), fw); err != nil {
		t.Fatal(err)
	}
	waitFirmwareCondition(t, ns, "fw", otav1.ConditionReconciling, metav1.ConditionTrue, otav1.ReasonInUse)

	// Each annotation change is a reconcile, racing the status patches.
	for i := range 10 {
		cur := getFirmware(t, ns, "fw")
		if cur.Annotations == nil {
			cur.Annotations = map[string]string{}
		}
		cur.Annotations["test/poke"] = fmt.Sprint(i)
		if err := suite.k8s.Update(t.Context(), cur); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		n := occurrences(t, ns, "fw", otav1.ReasonInUse)
		return n >= 1, fmt.Sprintf("%d InUse events", n)
	})
	// Bounded look for late duplicates: the recorder writes asynchronously.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if n := occurrences(t, ns, "fw", otav1.ReasonInUse); n != 1 {
			t.Fatalf("InUse announced %d times, want once", n)
		}
		time.Sleep(200 * time.Millisecond) // polling interval
	}
	setRunPhase(t, vr, otav1.RunSucceeded)
	waitFirmwareGone(t, fw)
}
