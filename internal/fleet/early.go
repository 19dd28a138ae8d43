package fleet

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/otafleet/otafleet/internal/protocol"
)

// MaxEarlyReports bounds the reports kept for products not registered yet:
// one entry per device (its last version of each module), oldest evicted
// first. 100,000 entries cost about 15 MiB, and cover a first production
// run whose devices are switched on before the team applied its Product.
const MaxEarlyReports = 100_000

// earlyReports keeps the last inform of each device of an unknown
// productKey, so that a device that informed before its Product existed
// is in the inventory once the Product is registered, instead of staying
// out until it reboots (devices inform only on connect).
type earlyReports struct {
	max     int
	entries map[earlyKey]*earlyEntry
	// order holds keys oldest first; entries evicted or taken meanwhile
	// are skipped when their turn comes.
	order   []earlyKey
	seq     uint64
	evicted int64
}

type earlyKey struct{ productKey, device string }

type earlyEntry struct {
	seq      uint64
	modules  map[string]string
	lastSeen time.Time
}

// keepEarly is the hook in HandleBatch for a message of an unknown product.
func (e *Engine) keepEarly(m *protocol.Message, now time.Time) {
	if m.Kind != protocol.KindInform {
		return
	}
	r := &e.early
	if r.entries == nil {
		r.entries, r.max = map[earlyKey]*earlyEntry{}, MaxEarlyReports
	}
	// Copies: the gateway reuses the buffers a message points into.
	k := earlyKey{strings.Clone(m.ProductKey), strings.Clone(m.DeviceName)}
	en := r.entries[k]
	if en == nil {
		r.evictFor(1)
		r.seq++
		en = &earlyEntry{seq: r.seq, modules: map[string]string{}}
		r.entries[k] = en
		r.order = append(r.order, k)
	}
	en.modules[strings.Clone(m.Module)] = strings.Clone(m.Version)
	en.lastSeen = now
}

func (r *earlyReports) evictFor(n int) {
	for len(r.entries)+n > r.max && len(r.order) > 0 {
		k := r.order[0]
		r.order = r.order[1:]
		if _, ok := r.entries[k]; ok {
			delete(r.entries, k)
			r.evicted++
		}
	}
	// Taken entries leave their keys behind; compact when they dominate.
	if len(r.order) > 2*r.max {
		r.compact()
	}
}

func (r *earlyReports) compact() {
	kept := r.order[:0]
	for _, k := range r.order {
		if _, ok := r.entries[k]; ok {
			kept = append(kept, k)
		}
	}
	r.order = kept
}

// replayEarly applies the kept informs of a product just registered, as if
// its devices informed now. Called with e.mu held.
func (e *Engine) replayEarly(pr *product) {
	r := &e.early
	for k, en := range r.entries {
		if k.productKey != pr.key {
			continue
		}
		delete(r.entries, k)
		// In a stable order: the inventory lists modules as they came.
		for _, module := range slices.Sorted(maps.Keys(en.modules)) {
			m := protocol.Message{Kind: protocol.KindInform, ProductKey: k.productKey, DeviceName: k.device,
				Module: module, Version: en.modules[module]}
			e.inform(pr, &m, en.lastSeen)
		}
	}
	if len(r.order) > 2*len(r.entries)+1024 {
		r.compact()
	}
}

var (
	descEarlyKept    = prometheus.NewDesc("otafleet_fleet_early_reports", "Devices of unknown products whose last report is kept until their Product exists.", nil, nil)
	descEarlyEvicted = prometheus.NewDesc("otafleet_fleet_early_reports_evicted_total", "Kept reports of unknown products evicted, oldest first, to stay within the bound.", nil, nil)
)
