package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of /proc/<pid>/stat's CPU times (USER_HZ, 100 on
// every Linux this runs on).
const clockTick = 10 * time.Millisecond

// cpuTime returns the CPU time (user + system) a process used so far;
// pid 0 is this process.
func cpuTime(pid int) (time.Duration, error) {
	path := "/proc/self/stat"
	if pid != 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/stat"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return parseStat(string(b))
}

// parseStat reads utime and stime (fields 14 and 15) from a stat line. The
// command name is in parentheses and may hold spaces and parentheses:
// fields count from the last ')'.
func parseStat(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat line without a command name")
	}
	rest := strings.Fields(stat[i+1:])
	if len(rest) < 13 {
		return 0, fmt.Errorf("stat line with %d fields", len(rest))
	}
	utime, err1 := strconv.ParseInt(rest[11], 10, 64)
	stime, err2 := strconv.ParseInt(rest[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("stat line with unreadable CPU times")
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// cpuMeter reads several processes' CPU time at the start and end of a
// window.
type cpuMeter struct {
	names []string
	pids  []int
	start []time.Duration
}

func newCPUMeter() *cpuMeter { return &cpuMeter{} }

func (m *cpuMeter) add(name string, pid int) {
	m.names, m.pids = append(m.names, name), append(m.pids, pid)
}

func (m *cpuMeter) begin() {
	m.start = make([]time.Duration, len(m.pids))
	for i, pid := range m.pids {
		m.start[i], _ = cpuTime(pid)
	}
}

// used returns the CPU each process used since begin, by name; a process
// that could not be read is left out.
func (m *cpuMeter) used() map[string]time.Duration {
	out := map[string]time.Duration{}
	for i, pid := range m.pids {
		if t, err := cpuTime(pid); err == nil {
			out[m.names[i]] = t - m.start[i]
		}
	}
	return out
}
