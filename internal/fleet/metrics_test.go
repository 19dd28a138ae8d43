package fleet

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/protocol"
)

// The collector is tested on an engine of its own, driven tick by tick, so
// that other tests' products in the shared API server do not show.
func TestCollectorReportsTasksAndDevices(t *testing.T) {
	e := New(nil, nil, nil, staticSigner{}, Options{}, logr.Discard())
	e.ready = true
	close(e.readyCh)
	sim := &simDevices{e: e, pk: "pk", how: map[string]behaviour{"bad": failsDownload}, pushes: map[string]int{},
		modules: map[string]map[string]string{}}
	e.sender.pub = sim
	p := &otav1.Product{Spec: otav1.ProductSpec{ProductKey: "pk"}}
	p.Name, p.Namespace, p.UID = "p", "ns", "uid"
	e.SyncProduct(p)
	var msgs []protocol.Message
	for _, n := range []string{"a", "b", "c", "d", "e", "bad"} {
		sim.modules[n] = map[string]string{}
		msgs = append(msgs, protocol.Message{Kind: protocol.KindInform, ProductKey: "pk", DeviceName: n, Module: "default", Version: "1.0.0"})
	}
	e.HandleBatch(context.Background(), msgs)
	ref := otav1.CampaignReference{Kind: otav1.KindUpgradeBatch, Name: "b"}
	if _, err := e.Upsert(Spec{Ref: ref, Namespace: "ns", ProductKey: "pk", Module: "default", Target: "2.0.0",
		RatePerMinute: 10000, Image: Image{Bucket: "b", Key: "k", Size: 1, MD5: "0123456789abcdef0123456789abcdef"}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if st, _ := e.Status("ns", ref); st.Phase == otav1.BatchCompleted {
			break
		}
		e.tick()
		// No API server: take every change as written, as a flush would,
		// and send the pushes that waited for it.
		if out := e.durable.advance(e.durable.seq); len(out) > 0 {
			e.send(out)
		}
		for len(e.outbox) > 0 { // no Start: send what the tick queued
			e.send(<-e.outbox)
		}
	}
	want := `
# HELP otafleet_fleet_tasks Device tasks of all campaigns by state.
# TYPE otafleet_fleet_tasks gauge
otafleet_fleet_tasks{state="CANCELED"} 0
otafleet_fleet_tasks{state="CONFIRM"} 0
otafleet_fleet_tasks{state="FAILED"} 1
otafleet_fleet_tasks{state="IN_PROGRESS"} 0
otafleet_fleet_tasks{state="NOTIFIED"} 0
otafleet_fleet_tasks{state="QUEUED"} 0
otafleet_fleet_tasks{state="REVERTED"} 0
otafleet_fleet_tasks{state="SOAKING"} 0
otafleet_fleet_tasks{state="SUCCEEDED"} 5
otafleet_fleet_tasks{state="TIMED_OUT"} 0
# HELP otafleet_fleet_devices Devices in the inventory of all products.
# TYPE otafleet_fleet_devices gauge
otafleet_fleet_devices 6
# HELP otafleet_fleet_pushes_total Upgrade pushes sent, and pushes that failed to publish.
# TYPE otafleet_fleet_pushes_total counter
otafleet_fleet_pushes_total{result="failed"} 0
otafleet_fleet_pushes_total{result="sent"} 6
`
	if err := testutil.CollectAndCompare(NewCollector(e), strings.NewReader(want),
		"otafleet_fleet_tasks", "otafleet_fleet_devices", "otafleet_fleet_pushes_total"); err != nil {
		t.Fatal(err)
	}
}

// A stopped engine's counters stay in the sum; its gauges go.
func TestCollectorKeepsRetiredCounters(t *testing.T) {
	a := New(nil, nil, nil, staticSigner{}, Options{}, logr.Discard())
	b := New(nil, nil, nil, staticSigner{}, Options{}, logr.Discard())
	a.stats.Pushed, b.stats.Pushed = 3, 4
	a.products["pk"] = &product{key: "pk", devices: map[string]*device{"d": {name: "d"}}}
	live := []*Engine{a, b}
	c := NewFleetCollector(func() []*Engine { return live })
	want := func(pushes, devices int) string {
		return fmt.Sprintf(`
# HELP otafleet_fleet_devices Devices in the inventory of all products.
# TYPE otafleet_fleet_devices gauge
otafleet_fleet_devices %d
# HELP otafleet_fleet_pushes_total Upgrade pushes sent, and pushes that failed to publish.
# TYPE otafleet_fleet_pushes_total counter
otafleet_fleet_pushes_total{result="failed"} 0
otafleet_fleet_pushes_total{result="sent"} %d
`, devices, pushes)
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want(7, 1)), "otafleet_fleet_pushes_total", "otafleet_fleet_devices"); err != nil {
		t.Fatal(err)
	}
	c.Retire(a)
	live = []*Engine{b}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want(7, 0)), "otafleet_fleet_pushes_total", "otafleet_fleet_devices"); err != nil {
		t.Fatal(err)
	}
}
