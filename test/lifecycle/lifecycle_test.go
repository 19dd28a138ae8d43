package lifecycle

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/protocol"
)

// eventually polls cond every 100 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, msg)
		}
		select {
		case <-t.Context().Done():
			t.Fatal("test context ended")
		case <-time.After(100 * time.Millisecond): // polling interval
		}
	}
}

func create(t *testing.T, o client.Object) {
	t.Helper()
	if err := suite.cp.Client.Create(t.Context(), o); err != nil {
		t.Fatal(err)
	}
}

func newNamespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
	create(t, ns)
	t.Cleanup(func() { _ = suite.cp.Client.Delete(context.Background(), ns) })
	return ns.Name
}

// product creates the Product and waits until it owns its key (and so is
// registered with the engine), then lets devices inform version 1.0.0.
func product(t *testing.T, ns, key string, devices []string) *otav1.Product {
	t.Helper()
	p := &otav1.Product{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plug"}, Spec: otav1.ProductSpec{ProductKey: key}}
	create(t, p)
	eventually(t, 30*time.Second, func() (bool, string) {
		_ = suite.cp.Client.Get(t.Context(), client.ObjectKeyFromObject(p), p)
		c := apimeta.FindStatusCondition(p.Status.Conditions, otav1.ConditionReady)
		_, registered := suite.engine.ProductKeyOf(client.ObjectKeyFromObject(p))
		return c != nil && c.Status == metav1.ConditionTrue && registered, fmt.Sprintf("Product conditions %+v", p.Status.Conditions)
	})
	var msgs []protocol.Message
	for _, d := range devices {
		msgs = append(msgs, protocol.Message{Kind: protocol.KindInform, ProductKey: key, DeviceName: d,
			Module: protocol.DefaultModule, Version: "1.0.0"})
	}
	suite.engine.HandleBatch(t.Context(), msgs)
	return p
}

// firmware stores a small image under the namespace's prefix and creates a
// Firmware of it that needs no verification run.
func firmware(t *testing.T, ns string) *otav1.Firmware {
	t.Helper()
	if err := suite.store.EnsureBucket(t.Context(), bucket); err != nil {
		t.Fatal(err)
	}
	img := bytes.Repeat([]byte(ns), 1000)
	if _, err := suite.store.Put(t.Context(), bucket, ns+"/fw.bin", bytes.NewReader(img), int64(len(img)), ""); err != nil {
		t.Fatal(err)
	}
	fw := &otav1.Firmware{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "fw"}, Spec: otav1.FirmwareSpec{
		Product: "plug", Version: "2.0.0", VerificationRequired: ptr.To(false),
		Source: otav1.FirmwareSource{Object: &otav1.ObjectSource{Key: ns + "/fw.bin"}}}}
	create(t, fw)
	waitFirmwareReady(t, ns)
	return fw
}

func waitFirmwareReady(t *testing.T, ns string) {
	t.Helper()
	eventually(t, 60*time.Second, func() (bool, string) {
		fw := &otav1.Firmware{}
		_ = suite.cp.Client.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: "fw"}, fw)
		c := apimeta.FindStatusCondition(fw.Status.Conditions, otav1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == fw.Generation,
			fmt.Sprintf("Firmware conditions %+v", fw.Status.Conditions)
	})
}

func batch(t *testing.T, ns, name string, mutate ...func(*otav1.UpgradeBatch)) {
	t.Helper()
	ub := &otav1.UpgradeBatch{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: otav1.UpgradeBatchSpec{Firmware: "fw"}}
	for _, m := range mutate {
		m(ub)
	}
	create(t, ub)
}

func getBatch(t *testing.T, ns, name string) *otav1.UpgradeBatch {
	t.Helper()
	ub := &otav1.UpgradeBatch{}
	if err := suite.cp.Client.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, ub); err != nil {
		t.Fatal(err)
	}
	return ub
}

func waitBatch(t *testing.T, ns, name, what string, cond func(*otav1.UpgradeBatch) bool) *otav1.UpgradeBatch {
	t.Helper()
	var ub *otav1.UpgradeBatch
	eventually(t, 60*time.Second, func() (bool, string) {
		ub = getBatch(t, ns, name)
		return cond(ub), fmt.Sprintf("batch %s not %s: phase %s counts %+v conditions %+v", name, what,
			ub.Status.Phase, ub.Status.Counts, ub.Status.Conditions)
	})
	return ub
}

// holders maps each device to the campaigns whose UpgradeSlices, the
// durable record, show it in an active task.
func holders(t *testing.T, ns string) map[string][]string {
	t.Helper()
	var list otav1.UpgradeSliceList
	if err := suite.cp.Client.List(t.Context(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, s := range list.Items {
		for _, task := range s.Tasks {
			if task.State.Active() {
				out[task.Device] = append(out[task.Device], s.Campaign.Name+":"+string(task.State))
			}
		}
	}
	return out
}

// Deleting a Product cancels its running batch before the Product goes; a
// Product created again under the same name and key starts from free
// devices, and no device is ever held by two campaigns.
func TestProductDeletionCancelsCampaigns(t *testing.T) {
	ns := newNamespace(t, "lc-delete-")
	key := "lc-" + ns[len(ns)-5:]
	devices := []string{"d0", "d1", "d2", "d3"}
	p := product(t, ns, key, devices)
	firmware(t, ns)
	batch(t, ns, "first")
	waitBatch(t, ns, "first", "holding every device", func(ub *otav1.UpgradeBatch) bool {
		return ub.Status.Counts.Notified == int64(len(devices))
	})

	if err := suite.cp.Client.Delete(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	ub := waitBatch(t, ns, "first", "canceled", func(ub *otav1.UpgradeBatch) bool {
		return ub.Status.Phase == otav1.BatchCanceled
	})
	if c := apimeta.FindStatusCondition(ub.Status.Conditions, otav1.ConditionReady); c == nil || c.Reason != otav1.ReasonProductDeleted {
		t.Errorf("canceled batch's Ready: %+v, want reason %s", c, otav1.ReasonProductDeleted)
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		err := suite.cp.Client.Get(t.Context(), client.ObjectKeyFromObject(p), &otav1.Product{})
		return apierrors.IsNotFound(err), fmt.Sprintf("Product still there: %v", err)
	})
	if h := holders(t, ns); len(h) != 0 {
		t.Errorf("devices still held after the Product went: %v", h)
	}

	// The same Product again; the devices inform again.
	product(t, ns, key, devices)
	waitFirmwareReady(t, ns)
	batch(t, ns, "second")
	waitBatch(t, ns, "second", "holding every device", func(ub *otav1.UpgradeBatch) bool {
		return ub.Status.Counts.Notified == int64(len(devices))
	})
	if ub := getBatch(t, ns, "first"); ub.Status.Phase != otav1.BatchCanceled {
		t.Errorf("first batch came back as %s", ub.Status.Phase)
	}
	// The slices are written within the flush window; wait until the
	// second batch's are, then no device may be in two campaigns.
	eventually(t, 30*time.Second, func() (bool, string) {
		h := holders(t, ns)
		var twice []string
		for d, cs := range h {
			if len(cs) > 1 {
				twice = append(twice, d+"="+strings.Join(cs, "+"))
			}
		}
		sort.Strings(twice)
		if len(twice) > 0 {
			t.Fatalf("devices held by two campaigns: %v", twice)
		}
		return len(h) == len(devices), fmt.Sprintf("holders %v", h)
	})
}

// The Product's status shows the version distribution the engine counts
// as devices inform, within the inventory interval.
func TestProductVersionDistribution(t *testing.T) {
	ns := newNamespace(t, "inventory-")
	key := "inv-" + ns[len(ns)-5:]
	p := product(t, ns, key, []string{"d1", "d2", "d3"})
	inform := func(device, module, version string) {
		suite.engine.HandleBatch(t.Context(), []protocol.Message{{Kind: protocol.KindInform, ProductKey: key,
			DeviceName: device, Module: module, Version: version}})
	}
	inform("d1", "mcu", "m-1")
	inform("d3", protocol.DefaultModule, "1.1.0")
	want := []otav1.ModuleVersions{
		{Module: "default", Versions: []otav1.VersionCount{{Version: "1.0.0", Devices: 2}, {Version: "1.1.0", Devices: 1}}},
		{Module: "mcu", Versions: []otav1.VersionCount{{Version: "m-1", Devices: 1}}},
	}
	waitInventory(t, p, 3, want)
	inform("d2", protocol.DefaultModule, "1.1.0")
	want[0].Versions = []otav1.VersionCount{{Version: "1.1.0", Devices: 2}, {Version: "1.0.0", Devices: 1}}
	waitInventory(t, p, 3, want)
}

func waitInventory(t *testing.T, p *otav1.Product, devices int64, modules []otav1.ModuleVersions) {
	t.Helper()
	eventually(t, 30*time.Second, func() (bool, string) {
		got := &otav1.Product{}
		_ = suite.cp.Client.Get(t.Context(), client.ObjectKeyFromObject(p), got)
		st := got.Status
		ok := st.Devices == devices && st.Slices == 1 && reflect.DeepEqual(st.Modules, modules)
		return ok, fmt.Sprintf("devices %d slices %d modules %+v", st.Devices, st.Slices, st.Modules)
	})
}
