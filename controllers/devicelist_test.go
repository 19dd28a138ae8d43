package controllers

import (
	"slices"
	"strings"
	"testing"
)

func TestReadDeviceList(t *testing.T) {
	cases := map[string][]string{
		"":                           {},
		"a\nb\n":                     {"a", "b"},
		"# comment\n\n  a  \r\nb":    {"a", "b"},
		"a\n#b\n\n\nc\n# trailing\n": {"a", "c"},
	}
	for in, want := range cases {
		got, err := readDeviceList(strings.NewReader(in))
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("readDeviceList(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}
