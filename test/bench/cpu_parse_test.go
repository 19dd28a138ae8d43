package bench

import (
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// A real line's shape: a command name with a space and a ')'.
	line := "4242 (weird) name) S 1 4242 4242 0 -1 4194304 9 0 0 0 150 25 0 0 20 0 4 0 123 456 789"
	got, err := parseStat(line)
	if err != nil || got != 175*clockTick {
		t.Fatalf("parseStat = %s, %v; want 1.75s", got, err)
	}
	for _, bad := range []string{"no name", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 10 u s"} {
		if _, err := parseStat(bad); err == nil {
			t.Errorf("parseStat(%q) read a time", bad)
		}
	}
	if d, err := cpuTime(0); err != nil || d < 0 || d > 24*time.Hour {
		t.Fatalf("this process's CPU time = %s, %v", d, err)
	}
}
