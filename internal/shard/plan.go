package shard

import (
	"hash/fnv"
	"slices"
)

// View is what one replica sees of the cluster at one instant.
type View struct {
	Self string
	// Members are the live replicas, Self among them.
	Members []string
	// Keys are the productKeys of every Product.
	Keys []string
	// Holders maps a productKey to the replica whose Lease on it is live;
	// a key absent is free (no Lease, released, or expired).
	Holders map[string]string
}

// Plan is what a replica does in one round.
type Plan struct {
	Acquire []string
	Release []string
}

// Decide plans one round: release the products whose Product is gone, and
// one product while holding more than the fair share; acquire free products
// while holding fewer. The fair share of K products among M replicas is
// floor(K/M), and K mod M of them hold one more: a replica at the higher
// share gives one product up when another is below the lower one and no
// product is free for it. Replicas try free products in an order of their
// own (a hash of replica and key), so that two replicas short of their
// share seldom race for the same Lease.
func Decide(v View) Plan {
	var p Plan
	keys := map[string]bool{}
	for _, k := range v.Keys {
		keys[k] = true
	}
	held := map[string]int{}
	var mine []string
	for k, h := range v.Holders {
		switch {
		case h == v.Self && !keys[k]:
			p.Release = append(p.Release, k)
		case h == v.Self:
			mine = append(mine, k)
		case keys[k]:
			held[h]++
		}
	}
	var free []string
	for k := range keys {
		if _, ok := v.Holders[k]; !ok {
			free = append(free, k)
		}
	}
	slices.Sort(p.Release)
	slices.Sort(mine)
	low, high := shares(len(keys), len(v.Members))
	switch {
	case len(mine) > high, len(mine) == high && high > low && len(free) == 0 && starving(v, held, low):
		p.Release = append(p.Release, mine[len(mine)-1])
	case len(mine) < low, len(mine) < high && !starving(v, held, low):
		// Up to the lower share; one above it while no replica is short
		// of the lower share (it has the free products first).
		want := max(low-len(mine), 1)
		slices.SortFunc(free, func(a, b string) int { return cmpRank(v.Self, a, b) })
		p.Acquire = free[:min(len(free), want)]
	}
	return p
}

// shares are the lower and higher fair share of products among replicas.
func shares(products, replicas int) (low, high int) {
	replicas = max(replicas, 1)
	low = products / replicas
	high = low
	if products%replicas != 0 {
		high++
	}
	return low, high
}

// starving reports whether another live replica holds fewer than low.
func starving(v View, held map[string]int, low int) bool {
	for _, m := range v.Members {
		if m != v.Self && held[m] < low {
			return true
		}
	}
	return false
}

func cmpRank(self, a, b string) int {
	ra, rb := rank(self, a), rank(self, b)
	switch {
	case ra < rb:
		return -1
	case ra > rb:
		return 1
	}
	return 0
}

func rank(self, key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(self))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return h.Sum64()
}
