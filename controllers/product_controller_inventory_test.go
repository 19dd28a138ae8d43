package controllers

import (
	"fmt"
	"reflect"
	"testing"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/fleet"
)

func TestTopVersions(t *testing.T) {
	tests := []struct {
		name string
		in   map[string]int64
		want []otav1.VersionCount
	}{
		{name: "empty", in: map[string]int64{}, want: []otav1.VersionCount{}},
		{
			name: "most common first, ties by name",
			in:   map[string]int64{"b": 2, "a": 2, "c": 5},
			want: []otav1.VersionCount{{Version: "c", Devices: 5}, {Version: "a", Devices: 2}, {Version: "b", Devices: 2}},
		},
	}
	many := map[string]int64{}
	var wantMany []otav1.VersionCount
	for i := range 25 {
		v := fmt.Sprintf("v%02d", i)
		many[v] = int64(100 - i)
		if i < maxVersionsShown {
			wantMany = append(wantMany, otav1.VersionCount{Version: v, Devices: int64(100 - i)})
		}
	}
	// v20..v24 hold 80+79+78+77+76 devices.
	wantMany = append(wantMany, otav1.VersionCount{Version: otherVersions, Devices: 390})
	tests = append(tests, struct {
		name string
		in   map[string]int64
		want []otav1.VersionCount
	}{name: "past 20 summed as other", in: many, want: wantMany})

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := topVersions(tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("topVersions = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSummarizeInventoryModuleOrder(t *testing.T) {
	counts := map[string]map[string]int64{"wifi": {"1": 1}, "mcu": {"1": 1}, "default": {"1": 1}}
	for i := range 20 {
		counts[fmt.Sprintf("extra%02d", i)] = map[string]int64{"1": 1}
	}
	inv := summarizeInventory(fleet.Inventory{Devices: 21, Slices: 1, Versions: counts}, []string{"wifi", "mcu"})
	if inv.devices != 21 || inv.slices != 1 {
		t.Errorf("devices %d slices %d, want 21 and 1", inv.devices, inv.slices)
	}
	if len(inv.modules) != maxModulesShown {
		t.Fatalf("%d modules, want at most %d", len(inv.modules), maxModulesShown)
	}
	got := []string{inv.modules[0].Module, inv.modules[1].Module, inv.modules[2].Module, inv.modules[3].Module}
	want := []string{"default", "wifi", "mcu", "extra00"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("first modules %v, want %v", got, want)
	}
}
