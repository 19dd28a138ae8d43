package fleet

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/protocol"
)

func informOf(pk, dn, module, version string) protocol.Message {
	return protocol.Message{Kind: protocol.KindInform, ProductKey: pk, DeviceName: dn, Module: module, Version: version}
}

// A device that informs before its Product exists is in the inventory, and
// in a DeviceSlice on the API server, once the Product is registered.
func TestEarlyReportKept(t *testing.T) {
	v := newEnv(t)
	late := v.pk + "-late"
	v.e.HandleBatch(context.Background(), []protocol.Message{
		informOf(late, "early-1", protocol.DefaultModule, "1.0.0"),
		informOf(late, "early-1", "mcu", "m-7"),
		{Kind: protocol.KindProgress, ProductKey: late, DeviceName: "early-2", Module: protocol.DefaultModule, Step: 10},
	})
	if st := v.e.Stats(); st.UnknownProduct != 3 {
		t.Errorf("unknown-product messages counted %d, want 3", st.UnknownProduct)
	}
	p := &otav1.Product{ObjectMeta: metav1.ObjectMeta{Name: "late", Namespace: v.ns}, Spec: otav1.ProductSpec{ProductKey: late}}
	if err := cp.Client.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	v.e.SyncProduct(p)

	deadline := time.Now().Add(30 * time.Second)
	for {
		var list otav1.DeviceSliceList
		if err := cp.Client.List(context.Background(), &list, client.InNamespace(v.ns)); err != nil {
			t.Fatal(err)
		}
		got := sliceDevices(list.Items, late)
		if got == "early-1[default=1.0.0 mcu=m-7]" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("inventory of the late product: %q, want early-1 with both modules (a progress report is not kept)", got)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	if n := len(v.e.early.entries); n != 0 {
		t.Errorf("%d early reports left after replay", n)
	}
}

func sliceDevices(slices []otav1.DeviceSlice, pk string) string {
	var out []string
	for _, s := range slices {
		if s.ProductKey != pk {
			continue
		}
		for _, d := range s.Devices {
			var mv []string
			for _, m := range d.Modules {
				mv = append(mv, m.Module+"="+m.Version)
			}
			out = append(out, d.Name+"["+strings.Join(mv, " ")+"]")
		}
	}
	return strings.Join(out, ",")
}

// The cache holds at most max devices; the oldest go first and are counted.
func TestEarlyReportsBounded(t *testing.T) {
	e := New(nil, nil, nil, staticSigner{}, Options{}, logr.Discard())
	e.early.entries, e.early.max = map[earlyKey]*earlyEntry{}, 3
	now := time.Unix(1000, 0)
	for i := range 5 {
		m := informOf("pk", fmt.Sprintf("d%d", i), protocol.DefaultModule, "1")
		e.keepEarly(&m, now)
	}
	// A repeated report of a kept device takes no new entry.
	m := informOf("pk", "d4", "mcu", "2")
	e.keepEarly(&m, now)
	if len(e.early.entries) != 3 || e.early.evicted != 2 {
		t.Fatalf("%d entries, %d evicted; want 3 and 2", len(e.early.entries), e.early.evicted)
	}
	for _, gone := range []string{"d0", "d1"} {
		if _, ok := e.early.entries[earlyKey{"pk", gone}]; ok {
			t.Errorf("%s kept, want it evicted as the oldest", gone)
		}
	}
	if s := gather(e); s.earlyKept != 3 || s.earlyEvicted != 2 {
		t.Errorf("metrics read %d kept, %d evicted; want 3 and 2", s.earlyKept, s.earlyEvicted)
	}
}
