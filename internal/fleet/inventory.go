package fleet

import "maps"

// versionCounts counts a product's devices by module and version, kept as
// devices inform, so that the Product's status reads it in O(versions)
// instead of scanning a million devices.
type versionCounts map[string]map[string]int64

func (vc versionCounts) add(module, version string, delta int64) {
	m := vc[module]
	if m == nil {
		m = map[string]int64{}
		vc[module] = m
	}
	if m[version] += delta; m[version] <= 0 {
		delete(m, version)
	}
}

// Inventory is what the engine knows of a product's devices.
type Inventory struct {
	Devices int64
	Slices  int32
	// Versions counts devices by module, then version.
	Versions map[string]map[string]int64
}

// Inventory returns a product's inventory, or false when the engine has
// not registered the product or is still loading.
func (e *Engine) Inventory(productKey string) (Inventory, bool) {
	e.mu.Lock()
	defer e.unlock()
	pr := e.products[productKey]
	if !e.ready || pr == nil {
		return Inventory{}, false
	}
	inv := Inventory{Devices: int64(len(pr.devices)), Slices: int32(len(pr.slices)),
		Versions: make(map[string]map[string]int64, len(pr.versions))}
	for m, vs := range pr.versions {
		inv.Versions[m] = maps.Clone(vs)
	}
	return inv, true
}
