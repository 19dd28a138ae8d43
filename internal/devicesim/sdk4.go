package devicesim

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/otafleet/otafleet/internal/protocol"
)

// maxHeaderLine4 is the longest response header line LinkSDK 4.x reads.
const maxHeaderLine4 = 126

// maxStalls bounds the resumes that bring no byte (a refused connection, a
// server that hangs up at once): the device would retry forever, the
// simulator gives up with step -2.
const maxStalls = 3

// get4 downloads as LinkSDK 4.x does: a Range on every request, a new
// connection per request, and a resume from the bytes it has after an
// error. It asks for the image in two halves; the first download of the
// fleet is also cut halfway through its first request, so every fleet that
// downloads shows whether the server honours a resume.
func (d *device) get4(ctx context.Context, t deviceURL, u protocol.Upgrade, g *digests) error {
	n, half := u.Size, u.Size/2
	cut := n >= 4 && d.f.cutOnce.CompareAndSwap(false, true)
	var have int64
	for req, stalls := 0, 0; have < n; req++ {
		if req > 0 {
			// The SDK reports the current percentage on every resumed request.
			d.sendProgress(u.Module, protocol.Step(have*100/n), "")
		}
		end := int64(-1) // "bytes=S-": to the end
		if have < half {
			end = half - 1
		}
		got, err := d.request4(ctx, t, have, end, u, g, cut && req == 0)
		have += got
		switch {
		case err == nil:
		case errors.Is(err, errCut):
		case isRetryable(err) && (got > 0 || stalls < maxStalls):
			if got == 0 {
				stalls++
			}
		default:
			return err
		}
	}
	return nil
}

// request4 sends one ranged request for bytes start..end (end -1: to the
// end of the image) and reads what it is owed, or half of it when cut.
func (d *device) request4(ctx context.Context, t deviceURL, start, end int64, u protocol.Upgrade, g *digests, cut bool) (int64, error) {
	rng, want := fmt.Sprintf("bytes=%d-", start), u.Size-start
	if end >= 0 {
		rng, want = fmt.Sprintf("bytes=%d-%d", start, end), end-start+1
	}
	resp, err := rawGet(ctx, rawRequest{addr: d.f.cfg.dialAddr(t), tls: d.f.downloadTLS(t), url: t, rng: rng, maxLine: maxHeaderLine4})
	if err != nil {
		return 0, retryable(err)
	}
	defer resp.close()
	if err := checkResponse4(resp, rng, start == 0 && end < 0, want); err != nil {
		return 0, err
	}
	limit := want
	if cut {
		limit = want / 2
	}
	got, err := d.readBody(resp.body, limit, start, u, g)
	if err != nil {
		return got, retryable(err)
	}
	if got < want {
		return got, errCut
	}
	return got, nil
}

// checkResponse4 applies LinkSDK 4.x's rules to a response head. whole
// tells whether the request asked for the whole image (bytes=0-), the only
// request a 200 may answer.
func checkResponse4(resp *rawResponse, rng string, whole bool, want int64) error {
	if !strings.HasPrefix(resp.statusLine, "HTTP/1.1 ") {
		return violationf(ViolationStatusLine, "status line %.40q does not start with \"HTTP/1.1 \"", resp.statusLine)
	}
	if err := checkStatus(resp, 200, 206); err != nil {
		return err
	}
	if resp.status == 200 && !whole {
		return violationf(ViolationRangeIgnored, "200 to %q: the server ignored Range and the device overshoots", rng)
	}
	if resp.chunked {
		return violationf(ViolationChunked, "a chunked response to %q", rng)
	}
	if resp.contentLength != want {
		return violationf(ViolationContentLength, "Content-Length %d (-1: none) for %q, which asks %d bytes",
			resp.contentLength, rng, want)
	}
	return nil
}

// retryableError is a network error after which a 4.x device resumes.
type retryableError struct{ err error }

func (e *retryableError) Error() string { return e.err.Error() }
func (e *retryableError) Unwrap() error { return e.err }

// retryable marks err as a network error, unless it is a violation.
func retryable(err error) error {
	if _, ok := violationOf(err); ok {
		return err
	}
	return &retryableError{err}
}

func isRetryable(err error) bool {
	var r *retryableError
	return errors.As(err, &r)
}
