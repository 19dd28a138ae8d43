package download

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/otafleet/otafleet/internal/storage"
)

// download is one verified request for one object.
type download struct {
	s      *Server
	w      http.ResponseWriter
	r      *http.Request
	key    string
	expiry time.Time
	spec   rangeSpec
	ranged bool
}

func (d *download) serve() (string, bool) {
	if d.r.Method == http.MethodHead {
		return d.head(), false
	}
	return d.get()
}

// head answers what a GET would, without the body.
func (d *download) head() string {
	info, err := d.s.cfg.Objects.Stat(d.r.Context(), d.s.cfg.Bucket, d.key)
	if err != nil {
		return d.storeFailure(err)
	}
	start, n, ok := d.place(info.Size)
	if !ok {
		return d.unsatisfiable(info.Size)
	}
	return d.writeHeader(start, n, info.Size)
}

func (d *download) get() (string, bool) {
	body, info, start, n, err := d.open()
	if errors.Is(err, storage.ErrRangeNotSatisfiable) {
		return d.unsatisfiable(info.Size), false
	} else if err != nil {
		return d.storeFailure(err), false
	}
	defer body.Close()
	reason := d.writeHeader(start, n, info.Size)
	return d.s.copyBody(d.r.Context(), d.w, body, n, reason, d.key)
}

// open asks the store for exactly the bytes to send, in one request but
// for suffix ranges, and returns where they sit in the object.
func (d *download) open() (io.ReadCloser, storage.ObjectInfo, int64, int64, error) {
	ctx, objects, bucket := d.r.Context(), d.s.cfg.Objects, d.s.cfg.Bucket
	if d.ranged && d.spec.suffix {
		// Only the size turns "the last N bytes" into an offset.
		info, err := objects.Stat(ctx, bucket, d.key)
		if err != nil {
			return nil, info, 0, 0, err
		}
		start, n, ok := d.spec.resolve(info.Size)
		if !ok {
			return nil, info, 0, 0, storage.ErrRangeNotSatisfiable
		}
		d.spec = rangeSpec{first: start, last: start + n - 1}
	}
	first, length := int64(0), int64(-1)
	if d.ranged {
		first, length = d.spec.first, d.spec.length()
	}
	body, info, err := objects.GetRange(ctx, bucket, d.key, first, length)
	if err != nil {
		return nil, info, 0, 0, err
	}
	start, n, ok := d.place(info.Size)
	if !ok {
		_ = body.Close()
		return nil, info, 0, 0, storage.ErrRangeNotSatisfiable
	}
	return body, info, start, n, nil
}

// place returns the bytes to send from an object of size bytes.
func (d *download) place(size int64) (start, n int64, ok bool) {
	if !d.ranged {
		return 0, size, true
	}
	return d.spec.resolve(size)
}

// writeHeader sends the status and headers of a 200 or 206. Every value is
// set here so that Go adds nothing but Date: no sniffed type, no chunking,
// and every header line stays far below the 127 characters devices take.
func (d *download) writeHeader(start, n, size int64) string {
	h := d.w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	h.Set("Cache-Control", d.cacheControl())
	if !d.ranged {
		d.w.WriteHeader(http.StatusOK)
		return reasonOK
	}
	h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+n-1, size))
	d.w.WriteHeader(http.StatusPartialContent)
	return reasonPartial
}

// cacheControl lets a CDN keep an answer no longer than its URL is valid.
func (d *download) cacheControl() string {
	if !d.s.cfg.CacheControl {
		return "no-store"
	}
	left := max(d.expiry.Sub(d.s.cfg.Now()), 0)
	return "public, max-age=" + strconv.FormatInt(int64(left/time.Second), 10)
}

func (d *download) unsatisfiable(size int64) string {
	d.w.Header().Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
	writeError(d.w, http.StatusRequestedRangeNotSatisfiable, "range not satisfiable")
	return reasonRange
}

// storeFailure answers an error of the store before any byte was sent.
func (d *download) storeFailure(err error) string {
	switch {
	case errors.Is(err, storage.ErrNotFound):
		writeError(d.w, http.StatusNotFound, "not found")
		return reasonNotFound
	case d.r.Context().Err() != nil && errors.Is(err, context.Canceled):
		return reasonAborted // the device hung up while we asked the store
	}
	d.s.logStoreError(err, "Object store failed before the download started", "key", d.key)
	writeError(d.w, http.StatusServiceUnavailable, "storage unavailable")
	return reasonStoreError
}
