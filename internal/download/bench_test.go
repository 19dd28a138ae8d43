package download

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkDownload compares 1,000 concurrent clients downloading a 256 KiB
// image through the service (token check, one ranged GET to MinIO,
// streaming) with the same clients downloading it straight from MinIO with
// a pre-signed URL, which devices cannot use but which bounds what the
// service can reach on the same machine.
func BenchmarkDownload(b *testing.B) {
	const size = 256 << 10
	st, bucket := newStore(b)
	upload(b, st, bucket, uidKey, randomImage(9, size))
	b.Run("service", func(b *testing.B) {
		h := newHarness(b, Config{Bucket: bucket, Objects: st})
		benchDownloads(b, h.url(b, uidKey), size)
	})
	b.Run("presigned", func(b *testing.B) {
		u, err := st.PresignGet(context.Background(), bucket, uidKey, time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		benchDownloads(b, u.String(), size)
	})
}

// benchDownloads runs b.N downloads of url on 1,000 concurrent clients and
// reports MiB/s and downloads/s.
func benchDownloads(b *testing.B, url string, size int64) {
	const clients = 1000
	transport := &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 2 * time.Minute}
	var next, failed atomic.Int64
	var firstErr atomic.Value
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := downloadOnce(client, url, size); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d downloads failed, the first: %v", n, b.N, firstErr.Load())
	}
	b.ReportMetric(float64(b.N)*float64(size)/(1<<20)/elapsed, "MiB/s")
	b.ReportMetric(float64(b.N)/elapsed, "downloads/s")
}

func downloadOnce(client *http.Client, url string, size int64) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil && (resp.StatusCode != http.StatusOK || n != size) {
		err = fmt.Errorf("status %d with %d of %d bytes", resp.StatusCode, n, size)
	}
	return err
}
