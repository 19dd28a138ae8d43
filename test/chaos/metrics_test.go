package chaos

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// managerMetrics are the few of the manager's metrics that tell whether it
// took over: only the leader connects to the broker and rebuilds the fleet.
type managerMetrics struct {
	connected bool    // otafleet_mqtt_connected: connected and subscribed
	devices   float64 // otafleet_fleet_devices: the inventory the engine rebuilt
	pushes    float64 // otafleet_fleet_pushes_total{result="sent"}
	connects  float64 // otafleet_mqtt_connects_total: reconnections included
	cpu       float64 // process_cpu_seconds_total
	heap      float64 // go_memstats_heap_inuse_bytes
}

// scrape reads the manager's /metrics.
func scrape(ctx context.Context, addr string) (managerMetrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return managerMetrics{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return managerMetrics{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return managerMetrics{}, fmt.Errorf("metrics: %s", resp.Status)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics picks our series out of Prometheus' text format.
func parseMetrics(r io.Reader) (managerMetrics, error) {
	var m managerMetrics
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		switch series {
		case "otafleet_mqtt_connected":
			m.connected = v >= 1
		case "process_cpu_seconds_total":
			m.cpu = v
		case "go_memstats_heap_inuse_bytes":
			m.heap = v
		case "otafleet_fleet_devices":
			m.devices = v
		case `otafleet_fleet_pushes_total{result="sent"}`:
			m.pushes = v
		case "otafleet_mqtt_connects_total":
			m.connects = v
		}
	}
	return m, sc.Err()
}
