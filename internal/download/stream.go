package download

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// copyBufferBytes is the size of one read from the store and one write to
// the device: the memory a download holds, whatever the image's size.
const copyBufferBytes = 32 << 10

var bufferPool = sync.Pool{New: func() any { return new([copyBufferBytes]byte) }}

// copyBody streams exactly n bytes of body to w, paced by the egress cap,
// and returns the reason to count and whether to cut the connection. ok is
// the reason when all n bytes went out.
func (s *Server) copyBody(ctx context.Context, w io.Writer, body io.Reader, n int64, ok, key string) (string, bool) {
	buf := bufferPool.Get().(*[copyBufferBytes]byte)
	defer bufferPool.Put(buf)
	src := &storeReader{r: io.LimitReader(body, n)}
	dst := &egressWriter{ctx: ctx, w: w, limiter: s.limiter, chunk: s.chunk, bytes: s.metrics.bytes}
	// Both wrappers hide ReadFrom/WriteTo, so CopyBuffer really uses buf,
	// one chunk at a time.
	written, err := io.CopyBuffer(dst, src, buf[:s.chunk])
	switch {
	case src.err != nil:
		s.logStoreError(src.err, "Object store failed mid-download", "key", key, "sent", written, "of", n)
		return reasonStoreError, true
	case err != nil:
		return reasonAborted, false // the device went away or stopped reading
	case written < n:
		s.logStoreError(errors.New("object shorter than announced"), "Object store ended the body early",
			"key", key, "sent", written, "of", n)
		return reasonStoreError, true
	}
	return ok, false
}

// storeReader remembers the store's error, so that copyBody can tell it
// from the device's.
type storeReader struct {
	r   io.Reader
	err error
}

func (s *storeReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// egressWriter waits for the shared limiter before each chunk, so all
// downloads together stay under the cap, and counts what went out.
type egressWriter struct {
	ctx     context.Context
	w       io.Writer
	limiter *rate.Limiter
	chunk   int
	bytes   prometheus.Counter
}

func (e *egressWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		part := p[:min(len(p), e.chunk)]
		if e.limiter != nil {
			if err := e.limiter.WaitN(e.ctx, len(part)); err != nil {
				return written, err
			}
		}
		n, err := e.w.Write(part)
		written += n
		e.bytes.Add(float64(n))
		if err != nil {
			return written, err
		}
		p = p[len(part):]
	}
	return written, nil
}
