package dashboard

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/testserver"
)

const (
	benchSlices   = 1000
	benchPerSlice = otav1.MaxDevicesPerSlice
)

// BenchmarkBatchPage100k measures the batch page of a 100,000-device batch
// (1,000 UpgradeSlices of 100 lines, written straight into a real API
// server; no fleet): the first load, which builds the batch's index, then
// each later load of the page's data (the batch view and one page of the
// device table, searched and filtered). It reports the figures as metrics;
// it asserts nothing about time, which depends on the machine.
//
//	go test -run '^$' -bench BatchPage100k -benchtime 20x ./internal/dashboard/
func BenchmarkBatchPage100k(b *testing.B) {
	cp, err := testserver.StartControlPlane()
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cp.Stop() }()
	ctx := context.Background()
	ns := seed100k(b, ctx, cp.Client)

	start := time.Now()
	srv, err := Start(ctx, Options{Config: cp.Config, Namespace: ns, SyncTimeout: 5 * time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	synced := time.Since(start)
	web := httptest.NewServer(srv.Handler())
	defer web.Close()

	start = time.Now()
	pageBytes := loadBatchPage(b, web.URL, "offset=0&limit=50")
	first := time.Since(start)
	b.ReportMetric(float64(synced.Milliseconds()), "watch-sync-ms")
	b.ReportMetric(float64(first.Milliseconds()), "first-load-ms")
	b.ReportMetric(float64(pageBytes), "page-bytes")
	b.Logf("100,000 devices: watches synced in %s; first load of the batch page's data (index built) %s, %d bytes",
		synced.Round(time.Millisecond), first.Round(time.Millisecond), pageBytes)

	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		q := []string{"offset=50000&limit=50", "q=dev-09&limit=50", "state=FAILED&offset=100&limit=50"}[i%3]
		loadBatchPage(b, web.URL, q)
	}
}

// loadBatchPage gets what the batch page loads, the batch view and one
// page of devices, and returns the bytes received.
func loadBatchPage(b *testing.B, base, devicesQuery string) int {
	n := 0
	for _, path := range []string{"/api/batches/big", "/api/batches/big/devices?" + devicesQuery} {
		resp, err := http.Get(base + path)
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %v %s %s", path, err, resp.Status, body)
		}
		n += len(body)
	}
	return n
}

// seed100k creates a namespace with batch "big" and its 1,000 slices, as
// the engine would have written them.
func seed100k(b *testing.B, ctx context.Context, c client.Client) string {
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "dash-bench-"}}
	if err := c.Create(ctx, nsObj); err != nil {
		b.Fatal(err)
	}
	ns := nsObj.Name
	ub := &otav1.UpgradeBatch{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "big"},
		Spec: otav1.UpgradeBatchSpec{Firmware: "plug-2.0.0", Waves: []otav1.Wave{{Percent: 10}, {Percent: 100}}}}
	if err := c.Create(ctx, ub); err != nil {
		b.Fatal(err)
	}
	ub.Status = otav1.UpgradeBatchStatus{Phase: otav1.BatchRunning, CurrentWave: 2, Waves: 2, Slices: benchSlices,
		Counts: otav1.TaskCounts{Total: benchSlices * benchPerSlice}}
	if err := c.Status().Update(ctx, ub); err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, benchSlices)
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				errs <- c.Create(ctx, benchSlice(ns, i))
			}
		})
	}
	for i := range benchSlices {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	return ns
}

func benchSlice(ns string, i int) *otav1.UpgradeSlice {
	s := &otav1.UpgradeSlice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("big-%04d", i),
		Labels: map[string]string{otav1.LabelCampaign: "big", otav1.LabelKind: string(otav1.KindUpgradeBatch)}},
		Campaign: otav1.CampaignReference{Kind: otav1.KindUpgradeBatch, Name: "big"}, ProductKey: "benchplug", Module: "default"}
	now := time.Now().Unix()
	for j := range benchPerSlice {
		n := i*benchPerSlice + j
		t := otav1.DeviceTask{Device: fmt.Sprintf("dev-%06d", n), State: otav1.TaskSucceeded, Attempt: 1, Step: 100,
			FromVersion: "1.0.0", Wave: 1 + int32(min(n/10000, 1)), Updated: now}
		if n%20 == 0 {
			t.State, t.Step, t.Reason, t.Message = otav1.TaskFailed, -2, otav1.FailureDownload, "HTTP 404"
		}
		s.Tasks = append(s.Tasks, t)
	}
	return s
}

// BenchmarkIndex100k measures the dashboard's own work for a
// 100,000-device batch without an API server: building the index from
// 1,000 decoded slices, and answering device-table queries from it.
//
//	go test -run '^$' -bench Index100k ./internal/dashboard/
func BenchmarkIndex100k(b *testing.B) {
	items := make([]otav1.UpgradeSlice, benchSlices)
	for i := range items {
		items[i] = *benchSlice("bench", benchSlices-1-i) // newest first, as a list may return them
	}
	b.Run("build", func(b *testing.B) {
		for b.Loop() {
			newIndex(1, items)
		}
	})
	ix := newIndex(1, items)
	for _, q := range []query{{offset: 50000, limit: 50}, {search: "DEV-0999", limit: 50}, {state: otav1.TaskFailed, offset: 4000, limit: 50}} {
		b.Run(fmt.Sprintf("page q=%q state=%q offset=%d", q.search, q.state, q.offset), func(b *testing.B) {
			for b.Loop() {
				if rows, _ := ix.page(q); len(rows) == 0 {
					b.Fatal("no rows")
				}
			}
		})
	}
}
