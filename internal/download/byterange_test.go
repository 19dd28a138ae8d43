package download

import "testing"

func TestParseRange(t *testing.T) {
	const size = 1000
	tests := []struct {
		header      string
		ranged      bool  // false: ignored, the whole image with 200
		start, n    int64 // when ranged and satisfiable
		satisfiable bool
	}{
		{"", false, 0, 0, false},
		{"bytes=0-", true, 0, 1000, true},
		{"bytes=0-0", true, 0, 1, true},
		{"bytes=0-99", true, 0, 100, true},
		{"bytes=500-", true, 500, 500, true},
		{"bytes=500-599", true, 500, 100, true},
		{"bytes=999-", true, 999, 1, true},
		{"bytes=990-5000", true, 990, 10, true}, // end clamped to size-1
		{"bytes=0-999999999999999", true, 0, 1000, true},
		{"bytes=1000-", true, 0, 0, false},       // 416
		{"bytes=1000-2000", true, 0, 0, false},   // 416
		{"bytes=-100", true, 900, 100, true},     // suffix
		{"bytes=-5000", true, 0, 1000, true},     // suffix longer than the image
		{"Bytes = 10-19", true, 10, 10, true},    // unit is case-insensitive, spaces allowed around
		{"bytes=-0", false, 0, 0, false},         // malformed: an empty suffix
		{"bytes=5-4", false, 0, 0, false},        // malformed: last before first
		{"bytes=0-10,20-30", false, 0, 0, false}, // several ranges: ignored
		{"bytes=a-", false, 0, 0, false},
		{"bytes=+1-", false, 0, 0, false},
		{"bytes=1-+2", false, 0, 0, false},
		{"bytes=1 -2", false, 0, 0, false},
		{"bytes=1", false, 0, 0, false},
		{"bytes=", false, 0, 0, false},
		{"bytes=-", false, 0, 0, false},
		{"items=0-1", false, 0, 0, false},
		{"bytes=99999999999999999999-", false, 0, 0, false}, // overflows int64
	}
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			spec, ranged := parseRange(tt.header)
			if ranged != tt.ranged {
				t.Fatalf("parseRange(%q) ranged = %v, want %v", tt.header, ranged, tt.ranged)
			}
			if !ranged {
				return
			}
			start, n, ok := spec.resolve(size)
			if ok != tt.satisfiable || ok && (start != tt.start || n != tt.n) {
				t.Fatalf("resolve(%q, %d) = %d, %d, %v; want %d, %d, %v",
					tt.header, size, start, n, ok, tt.start, tt.n, tt.satisfiable)
			}
		})
	}
}

func TestRangeOfEmptyObject(t *testing.T) {
	for _, h := range []string{"bytes=0-", "bytes=-1"} {
		spec, _ := parseRange(h)
		if _, _, ok := spec.resolve(0); ok {
			t.Errorf("%s of an empty object is satisfiable, want 416", h)
		}
	}
}

func TestRangeLength(t *testing.T) {
	for h, want := range map[string]int64{"bytes=5-": -1, "bytes=5-9": 5, "bytes=0-0": 1} {
		spec, _ := parseRange(h)
		if got := spec.length(); got != want {
			t.Errorf("length of %s = %d, want %d", h, got, want)
		}
	}
}
