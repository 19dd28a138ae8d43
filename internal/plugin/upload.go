package plugin

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

// putFile streams a file to a pre-signed PUT URL. The body is the open
// file, never a buffer, so image size does not matter; Content-Length is
// set because S3 refuses chunked uploads to pre-signed URLs.
func putFile(ctx context.Context, url, path string, size int64, progress io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	pr := &progressReader{r: f}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		reportProgress(progress, path, pr, size, done)
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, pr)
	if err == nil {
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/octet-stream")
		var resp *http.Response
		if resp, err = http.DefaultClient.Do(req); err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			_ = resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				err = fmt.Errorf("upload refused: %s: %s", resp.Status, body)
			}
		}
	}
	close(done)
	<-stopped
	return err
}

type progressReader struct {
	r io.Reader
	n atomic.Int64
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n.Add(int64(n))
	return n, err
}

// reportProgress rewrites one line on the writer (stderr, so stdout stays
// parseable) five times a second until done.
func reportProgress(w io.Writer, name string, pr *progressReader, size int64, done <-chan struct{}) {
	start := time.Now()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	line := func() {
		n := pr.n.Load()
		rate := float64(n) / max(time.Since(start).Seconds(), 1e-3)
		fmt.Fprintf(w, "\rUploading %s %s %s / %s %3d%%  %s/s ", name, bar(n, size),
			bytesHuman(n), bytesHuman(size), n*100/max(size, 1), bytesHuman(int64(rate)))
	}
	for {
		select {
		case <-done:
			line()
			fmt.Fprintln(w)
			return
		case <-t.C:
			line()
		}
	}
}

func bytesHuman(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
