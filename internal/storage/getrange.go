package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7"
)

// GetRange opens length bytes of the object from offset (length < 0: to the
// end) and returns, in ObjectInfo.Size, the size of the whole object. It
// costs a single request to the store: the size comes from the
// Content-Range header of the ranged answer, which also means that the size
// and the bytes always belong to the same version of the object. The store
// clamps a range that runs past the end; an offset at or past the end
// returns an error wrapping ErrRangeNotSatisfiable, with the size found by
// a Stat. The transfer timeout starts now and ends when the reader is
// closed.
func (m *MinIO) GetRange(ctx context.Context, bucket, key string, offset, length int64) (io.ReadCloser, ObjectInfo, error) {
	if offset < 0 {
		return nil, ObjectInfo{}, fmt.Errorf("storage: negative offset %d", offset)
	}
	if length == 0 {
		// S3 cannot express an empty range; the size is all there is to say.
		info, err := m.Stat(ctx, bucket, key)
		return io.NopCloser(strings.NewReader("")), info, err
	}
	var opts minio.GetObjectOptions
	if err := setRange(&opts, offset, length); err != nil {
		return nil, ObjectInfo{}, err
	}
	tctx, cancel := context.WithTimeout(ctx, m.cfg.TransferTimeout)
	body, info, header, err := minio.Core{Client: m.internal}.GetObject(tctx, bucket, key, opts)
	if err != nil {
		cancel()
		info, err := m.statAfterRangeError(ctx, bucket, key, err)
		return nil, info, err
	}
	size, err := totalSize(header, info.Size, opts.Header().Get("Range") != "")
	if err != nil {
		_ = body.Close()
		cancel()
		return nil, ObjectInfo{}, fmt.Errorf("get %s/%s: %w", bucket, key, err)
	}
	out := objectInfo(bucket, info)
	out.Key, out.Size = key, size
	return &cancelOnClose{ReadCloser: body, cancel: cancel}, out, nil
}

// setRange translates offset/length into minio-go's range, which reads
// SetRange(0, 0) as the first byte only: a whole object sends no Range.
func setRange(opts *minio.GetObjectOptions, offset, length int64) error {
	switch {
	case offset == 0 && length < 0:
		return nil
	case length < 0:
		return opts.SetRange(offset, 0)
	default:
		return opts.SetRange(offset, offset+length-1)
	}
}

// statAfterRangeError turns the store's InvalidRange into
// ErrRangeNotSatisfiable with the object's size; other errors pass through.
func (m *MinIO) statAfterRangeError(ctx context.Context, bucket, key string, err error) (ObjectInfo, error) {
	if minio.ToErrorResponse(err).Code != minio.InvalidRange {
		return ObjectInfo{}, fmt.Errorf("get %s/%s: %w", bucket, key, wrapNotFound(err))
	}
	info, serr := m.Stat(ctx, bucket, key)
	if serr != nil {
		return ObjectInfo{}, serr
	}
	return info, fmt.Errorf("get %s/%s: %w", bucket, key, ErrRangeNotSatisfiable)
}

// totalSize reads the object's size from "Content-Range: bytes S-E/SIZE"
// of a ranged answer; an answer to a request without Range is the whole
// object, so its length is the size. A store that ignored the Range and
// answered 200 would send the wrong bytes: that is an error.
func totalSize(h http.Header, length int64, ranged bool) (int64, error) {
	if !ranged {
		return length, nil
	}
	cr := h.Get("Content-Range")
	_, total, ok := strings.Cut(cr, "/")
	if !strings.HasPrefix(cr, "bytes ") || !ok {
		return 0, errors.New("the store answered a ranged get without a Content-Range")
	}
	size, err := strconv.ParseInt(total, 10, 64)
	if err != nil || size < 0 {
		return 0, fmt.Errorf("the store answered an unknown object size in Content-Range %q", cr)
	}
	return size, nil
}
