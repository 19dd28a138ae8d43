package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"
)

// sampleHeap records the peak heap in use until the returned func is called.
func sampleHeap(peak *atomic.Uint64) func() {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done) }
}

// heapNow is the heap in use after a collection.
func heapNow() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// percentTimes records, per percent of n, when a counter first reached it.
type percentTimes [101]time.Time

func (p *percentTimes) mark(count int64, n int, now time.Time) {
	for i := 1; i <= 100 && int64(i)*int64(n) <= count*100; i++ {
		if p[i].IsZero() {
			p[i] = now
		}
	}
}

// track samples counters every 10 ms until the returned func is called,
// which returns when each percent of n was reached by each counter.
func track(n int, counters ...func() int64) func() []percentTimes {
	seen := make([]percentTimes, len(counters))
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			now := time.Now()
			for i, c := range counters {
				seen[i].mark(c(), n, now)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() []percentTimes { close(done); <-stopped; return seen }
}

// lag is the p50 and p99, over the percents of devices, of the time from
// one counter reaching a percent to another reaching it.
func lag(from, to percentTimes) (p50, p99 time.Duration, ok bool) {
	var lags []time.Duration
	for p := 1; p <= 100; p++ {
		if !from[p].IsZero() && !to[p].IsZero() {
			lags = append(lags, max(to[p].Sub(from[p]), 0))
		}
	}
	if len(lags) == 0 {
		return 0, 0, false
	}
	slices.Sort(lags)
	return lags[len(lags)/2], lags[len(lags)*99/100], true
}

// sample is one scrape of a Prometheus text endpoint: series → value.
type sample map[string]float64

var labelRE = regexp.MustCompile(`(\w+)="([^"]*)"`)

// scrape reads the series of the named metrics from a /metrics endpoint.
func scrape(ctx context.Context, hc *http.Client, url string, names ...string) (sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	out := sample{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, name := range names {
			if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
				i := strings.LastIndexByte(line, ' ')
				if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
					out[line[:i]] += v
				}
			}
		}
	}
	return out, sc.Err()
}

// apiWrites counts, from the API server's own apiserver_request_total,
// the write requests per resource (and subresource) between two scrapes.
func apiWrites(before, after sample) (total float64, byResource map[string]float64) {
	byResource = map[string]float64{}
	for series, v := range after {
		labels := map[string]string{}
		for _, m := range labelRE.FindAllStringSubmatch(series, -1) {
			labels[m[1]] = m[2]
		}
		switch labels["verb"] { // the API server reports a create as POST
		case "POST", "PUT", "PATCH", "APPLY", "DELETE":
		default:
			continue
		}
		d := v - before[series]
		if d == 0 {
			continue
		}
		r := labels["resource"]
		if s := labels["subresource"]; s != "" {
			r += "/" + s
		}
		r += " " + labels["verb"]
		byResource[r] += d
		total += d
	}
	return total, byResource
}

// serverCounters scrapes what the API server and etcd count of writes.
type serverCounters struct {
	api     *http.Client
	apiURL  string
	etcdURL string
}

func newServerCounters(cfg *rest.Config, etcdURL string) (*serverCounters, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	return &serverCounters{api: hc, apiURL: strings.TrimSuffix(cfg.Host, "/") + "/metrics", etcdURL: etcdURL + "/metrics"}, nil
}

type serverSample struct{ api, etcd sample }

func (s *serverCounters) read(ctx context.Context) (serverSample, error) {
	api, err := scrape(ctx, s.api, s.apiURL, "apiserver_request_total")
	if err != nil {
		return serverSample{}, err
	}
	etcd, err := scrape(ctx, http.DefaultClient, s.etcdURL, "etcd_disk_wal_write_bytes_total", "etcd_mvcc_db_total_size_in_bytes")
	return serverSample{api, etcd}, err
}

func sum(s sample, name string) float64 {
	var t float64
	for k, v := range s {
		if k == name || strings.HasPrefix(k, name+"{") {
			t += v
		}
	}
	return t
}

// formatCounts prints a map as "a 3, b 2", largest first.
func formatCounts(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			if m[a] > m[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %.0f", k, m[k])
	}
	return strings.Join(parts, ", ")
}
