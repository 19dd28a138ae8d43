package controllers

import (
	"fmt"
	"reflect"
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

func deviceSlice(ns, name, key string, devices ...otav1.DeviceRecord) *otav1.DeviceSlice {
	return &otav1.DeviceSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{otav1.LabelProductKey: key}},
		ProductKey: key,
		Devices:    devices,
	}
}

func device(name string, versions ...string) otav1.DeviceRecord {
	d := otav1.DeviceRecord{Name: name}
	for i := 0; i+1 < len(versions); i += 2 {
		d.Modules = append(d.Modules, otav1.ModuleVersion{Module: versions[i], Version: versions[i+1]})
	}
	return d
}

func TestProductVersionDistribution(t *testing.T) {
	ns := newNamespace(t, "prod-inv-")
	key := "inv-" + ns[len(ns)-5:]
	createProduct(t, ns, "lamp", key, "mcu")
	p := waitProductCondition(t, ns, "lamp", otav1.ConditionReady, metav1.ConditionTrue, otav1.ReasonSucceeded)
	if p.Status.Devices != 0 || len(p.Status.Modules) != 0 {
		t.Fatalf("inventory before any slice: %d devices, %+v", p.Status.Devices, p.Status.Modules)
	}

	s1 := deviceSlice(ns, "lamp-0", key,
		device("d1", "default", "1.0", "mcu", "m-1"),
		device("d2", "default", "1.0", "mcu", "m-2"),
		device("d3", "default", "1.1", "mcu", "m-1"))
	s2 := deviceSlice(ns, "lamp-1", key,
		device("d4", "default", "1.0"),
		device("d5"))
	other := deviceSlice(ns, "other-0", "not-"+key, device("x1", "default", "9.9"))
	for _, s := range []*otav1.DeviceSlice{s1, s2, other} {
		if err := suite.k8s.Create(t.Context(), s); err != nil {
			t.Fatal(err)
		}
	}
	want := []otav1.ModuleVersions{
		{Module: "default", Versions: []otav1.VersionCount{{Version: "1.0", Devices: 3}, {Version: "1.1", Devices: 1}}},
		{Module: "mcu", Versions: []otav1.VersionCount{{Version: "m-1", Devices: 2}, {Version: "m-2", Devices: 1}}},
	}
	waitInventory(t, ns, "lamp", 5, 2, want)

	// The engine moves a device to a new version.
	s2.Devices[0] = device("d4", "default", "1.1")
	if err := suite.k8s.Update(t.Context(), s2); err != nil {
		t.Fatal(err)
	}
	want[0].Versions = []otav1.VersionCount{{Version: "1.0", Devices: 2}, {Version: "1.1", Devices: 2}}
	waitInventory(t, ns, "lamp", 5, 2, want)
}

func waitInventory(t *testing.T, ns, name string, devices int64, slices int32, modules []otav1.ModuleVersions) {
	t.Helper()
	eventually(t, 30*time.Second, func() (bool, string) {
		st := getProduct(t, ns, name).Status
		ok := st.Devices == devices && st.Slices == slices && reflect.DeepEqual(st.Modules, modules)
		return ok, fmt.Sprintf("devices %d slices %d modules %+v", st.Devices, st.Slices, st.Modules)
	})
}
