package shard

import (
	"fmt"
	"slices"
	"testing"
)

func TestDecide(t *testing.T) {
	six := []string{"p1", "p2", "p3", "p4", "p5", "p6"}
	cases := map[string]struct {
		v                   View
		acquire, release    int
		releaseOnly         []string
		wantNoAcquireOfHeld bool
	}{
		"alone, nothing held: takes every product": {
			v: View{Self: "a", Members: []string{"a"}, Keys: six, Holders: map[string]string{}}, acquire: 6},
		"three replicas: takes its share of two": {
			v: View{Self: "a", Members: []string{"a", "b", "c"}, Keys: six, Holders: map[string]string{}}, acquire: 2},
		"share reached: nothing to do": {
			v: View{Self: "a", Members: []string{"a", "b", "c"}, Keys: six,
				Holders: map[string]string{"p1": "a", "p2": "a", "p3": "b"}}},
		"a replica joined: hands one product over a round": {
			v: View{Self: "a", Members: []string{"a", "b", "c"}, Keys: six,
				Holders: map[string]string{"p1": "a", "p2": "a", "p3": "a", "p4": "b", "p5": "b", "p6": "b"}},
			release: 1, releaseOnly: []string{"p3"}},
		"held by others: takes only free ones": {
			v: View{Self: "c", Members: []string{"a", "b", "c"}, Keys: six,
				Holders: map[string]string{"p1": "a", "p2": "a", "p3": "b", "p4": "b"}},
			acquire: 2},
		"a Product deleted: its lease goes": {
			v: View{Self: "a", Members: []string{"a"}, Keys: []string{"p1"},
				Holders: map[string]string{"p1": "a", "gone": "a"}},
			release: 1, releaseOnly: []string{"gone"}},
		"no member seen yet: counts itself": {
			v: View{Self: "a", Keys: six, Holders: map[string]string{}}, acquire: 6},
		"no products": {v: View{Self: "a", Members: []string{"a"}, Holders: map[string]string{}}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := Decide(tc.v)
			if len(p.Acquire) != tc.acquire || len(p.Release) != tc.release {
				t.Fatalf("plan %+v: want %d to acquire, %d to release", p, tc.acquire, tc.release)
			}
			if tc.releaseOnly != nil && !slices.Equal(p.Release, tc.releaseOnly) {
				t.Errorf("released %v, want %v", p.Release, tc.releaseOnly)
			}
			for _, k := range p.Acquire {
				if _, held := tc.v.Holders[k]; held {
					t.Errorf("acquires %s, held by %s", k, tc.v.Holders[k])
				}
			}
		})
	}
}

// play lets members decide in turn for ten rounds and returns how many
// products each holds.
func play(members, keys []string, holders map[string]string) map[string]int {
	for range 10 {
		for _, m := range members {
			p := Decide(View{Self: m, Members: members, Keys: keys, Holders: holders})
			for _, k := range p.Release {
				delete(holders, k)
			}
			for _, k := range p.Acquire {
				holders[k] = m
			}
		}
	}
	count := map[string]int{}
	for _, h := range holders {
		count[h]++
	}
	return count
}

// Replicas deciding in turn from the same start end balanced, each product
// held once; a replica that joins gets its share.
func TestDecideConverges(t *testing.T) {
	var keys []string
	for i := range 7 {
		keys = append(keys, fmt.Sprintf("pk%d", i))
	}
	members := []string{"r0", "r1", "r2"}
	holders := map[string]string{}
	count := play(members, keys, holders)
	if len(holders) != len(keys) {
		t.Fatalf("%d of %d products held: %v", len(holders), len(keys), holders)
	}
	for _, m := range members {
		if count[m] < 2 || count[m] > 3 {
			t.Errorf("replica %s holds %d products, want 2 or 3: %v", m, count[m], count)
		}
	}
	count = play(append(members, "r3"), keys, holders)
	if len(holders) != len(keys) || count["r3"] < 1 || count["r3"] > 2 {
		t.Errorf("after a join: %v (counts %v)", holders, count)
	}
}
