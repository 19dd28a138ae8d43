package fleet

import (
	"reflect"
	"testing"
)

// The Product's version distribution comes from the engine's counts, kept
// as devices inform and rebuilt from the DeviceSlices at start-up.
func TestInventoryCountsVersions(t *testing.T) {
	v := newEnv(t)
	v.devices(upgrades, map[string]string{"default": "1.0.0", "mcu": "m-1"}, "a", "b", "c")
	v.inform("c", "default", "1.1.0")
	v.inform("c", "default", "1.1.0") // a repeated inform changes nothing
	want := Inventory{Devices: 3, Slices: 1, Versions: map[string]map[string]int64{
		"default": {"1.0.0": 2, "1.1.0": 1},
		"mcu":     {"m-1": 3},
	}}
	if got, ok := v.e.Inventory(v.pk); !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("inventory = %+v (%v), want %+v", got, ok, want)
	}
	v.e.Flush(t.Context())
	v.restart()
	if got, ok := v.e.Inventory(v.pk); !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("inventory after a restart = %+v (%v), want %+v", got, ok, want)
	}
	if _, ok := v.e.Inventory("no-such-key"); ok {
		t.Fatal("an unknown product has an inventory")
	}
}
