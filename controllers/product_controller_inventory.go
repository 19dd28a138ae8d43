package controllers

import (
	"cmp"
	"slices"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/fleet"
)

// Bounds of ProductStatus.Modules, as the API validates them.
const (
	maxVersionsShown = 20
	maxModulesShown  = 17
	// otherVersions sums the versions past the most common ones.
	otherVersions = "other"
)

// inventory is what a Product's status says about its devices.
type inventory struct {
	devices int64
	slices  int32
	modules []otav1.ModuleVersions
}

// summarizeInventory turns the engine's counts into what the status
// shows. Declared modules and "default" come first so that they are kept
// when devices report more modules than the status may list.
func summarizeInventory(fi fleet.Inventory, declared []string) inventory {
	inv := inventory{devices: fi.Devices, slices: fi.Slices}
	for _, m := range orderModules(fi.Versions, declared) {
		inv.modules = append(inv.modules, otav1.ModuleVersions{Module: m, Versions: topVersions(fi.Versions[m])})
	}
	return inv
}

// orderModules lists the modules seen, declared ones first (in declaration
// order), then the others by name, at most maxModulesShown.
func orderModules(counts map[string]map[string]int64, declared []string) []string {
	rank := func(m string) int {
		if m == otav1.DefaultModule {
			return -1
		}
		if i := slices.Index(declared, m); i >= 0 {
			return i
		}
		return len(declared)
	}
	mods := make([]string, 0, len(counts))
	for m := range counts {
		mods = append(mods, m)
	}
	slices.SortFunc(mods, func(a, b string) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(a, b))
	})
	if len(mods) > maxModulesShown {
		mods = mods[:maxModulesShown]
	}
	return mods
}

// topVersions returns the most common versions first (ties by name), the
// ones past maxVersionsShown summed as "other".
func topVersions(byVersion map[string]int64) []otav1.VersionCount {
	out := make([]otav1.VersionCount, 0, len(byVersion))
	for v, n := range byVersion {
		out = append(out, otav1.VersionCount{Version: v, Devices: n})
	}
	slices.SortFunc(out, func(a, b otav1.VersionCount) int {
		return cmp.Or(cmp.Compare(b.Devices, a.Devices), cmp.Compare(a.Version, b.Version))
	})
	if len(out) <= maxVersionsShown {
		return out
	}
	var rest int64
	for _, vc := range out[maxVersionsShown:] {
		rest += vc.Devices
	}
	return append(out[:maxVersionsShown], otav1.VersionCount{Version: otherVersions, Devices: rest})
}
