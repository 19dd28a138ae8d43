// Package storage keeps firmware images in S3-compatible object storage
// (MinIO, AWS S3, OSS, Ceph RGW) through minio-go, behind the small Store
// interface so that reconcilers can be unit-tested with fakes.
//
// Two endpoints matter: the one the operator reaches (often an in-cluster
// Service) and the one devices reach. A pre-signed URL's signature covers the
// host, so URLs handed to devices are signed by a second client configured
// with the device-facing endpoint.
package storage

import (
	"context"
	"errors"
	"io"
	"net/url"
	"time"
)

// Defaults applied by New for zero Config fields.
const (
	// DefaultPartSize bounds the memory of one upload: minio-go buffers one
	// part at a time when the size is known.
	DefaultPartSize = 16 << 20
	// DefaultURLExpiry is how long a device download URL stays valid; a
	// device whose URL expired asks again (firmware/get).
	DefaultURLExpiry = 15 * time.Minute
	// DefaultRegion is used when none is configured, so that signing never
	// needs a GetBucketLocation round trip.
	DefaultRegion = "us-east-1"
	// DefaultCallTimeout bounds metadata calls (stat, delete, bucket checks).
	DefaultCallTimeout = 30 * time.Second
	// DefaultTransferTimeout bounds one streaming put or get.
	DefaultTransferTimeout = 30 * time.Minute
)

// ErrNotFound is returned (wrapped) when a bucket or object does not exist.
var ErrNotFound = errors.New("not found")

// ErrRangeNotSatisfiable is returned (wrapped) by GetRange when the offset
// is at or past the end of the object; the ObjectInfo returned with it still
// carries the object's size, which an HTTP 416 answer needs.
var ErrRangeNotSatisfiable = errors.New("range not satisfiable")

// ObjectInfo is what the store says about an object.
type ObjectInfo struct {
	Bucket       string
	Key          string
	Size         int64
	ETag         string
	ContentType  string
	LastModified time.Time
}

// Store is the object storage the operator needs. Implementations apply a
// timeout to every call and return errors whose text is safe to show in a
// condition only after passing through Sanitize.
type Store interface {
	// EnsureBucket creates the bucket when missing and refuses a bucket
	// that grants anonymous access: devices must only download through
	// pre-signed URLs.
	EnsureBucket(ctx context.Context, bucket string) error
	// Put streams size bytes from r into bucket/key with memory bounded by
	// the part size. size must be exact.
	Put(ctx context.Context, bucket, key string, r io.Reader, size int64, contentType string) (ObjectInfo, error)
	// Stat returns the object's metadata, or an error wrapping ErrNotFound.
	Stat(ctx context.Context, bucket, key string) (ObjectInfo, error)
	// Get opens the object for streaming; the caller closes the reader.
	Get(ctx context.Context, bucket, key string) (io.ReadCloser, ObjectInfo, error)
	// PresignGet returns a download URL signed for the device-facing
	// endpoint, valid for expiry (DefaultURLExpiry when zero).
	PresignGet(ctx context.Context, bucket, key string, expiry time.Duration) (*url.URL, error)
	// PresignPut returns an upload URL signed for the device-facing
	// endpoint (where uploaders outside the cluster reach the store).
	PresignPut(ctx context.Context, bucket, key string, expiry time.Duration) (*url.URL, error)
	// Copy copies an object server-side, so the bytes never pass through
	// the operator.
	Copy(ctx context.Context, srcBucket, srcKey, dstBucket, dstKey string) (ObjectInfo, error)
	// Delete removes the object; a missing object is not an error.
	Delete(ctx context.Context, bucket, key string) error
}

// Config describes how to reach the store.
type Config struct {
	// Endpoint is host[:port] the operator reaches, e.g. "minio.ota-system:9000".
	Endpoint string
	// Insecure uses plain HTTP to Endpoint.
	Insecure bool
	// PublicURL is the base URL devices and uploaders reach, e.g.
	// "https://firmware.example.com". Empty means the operator's endpoint.
	// It may carry no path: S3 signing covers the path.
	PublicURL string
	// AccessKey and SecretKey are the credentials (from a Secret).
	AccessKey string
	SecretKey string
	// Region is the store's region; DefaultRegion when empty.
	Region string
	// PartSize is the multipart part size; DefaultPartSize when zero.
	// S3 requires at least 5 MiB.
	PartSize uint64
	// URLExpiry is the default expiry of pre-signed URLs; DefaultURLExpiry
	// when zero.
	URLExpiry time.Duration
	// CallTimeout bounds metadata calls; DefaultCallTimeout when zero.
	CallTimeout time.Duration
	// TransferTimeout bounds one put or get; DefaultTransferTimeout when zero.
	TransferTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.PartSize == 0 {
		c.PartSize = DefaultPartSize
	}
	if c.URLExpiry == 0 {
		c.URLExpiry = DefaultURLExpiry
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	if c.TransferTimeout == 0 {
		c.TransferTimeout = DefaultTransferTimeout
	}
}
