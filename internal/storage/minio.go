package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// MinIO implements Store with minio-go against any S3-compatible service.
type MinIO struct {
	cfg Config
	// internal talks to the store; public only signs URLs for the
	// device-facing endpoint and never sends a request.
	internal *minio.Client
	public   *minio.Client
	// publicURL is the parsed device-facing base URL.
	publicURL *url.URL
}

var _ Store = (*MinIO)(nil)

// New builds a client from cfg. It makes no network call.
func New(cfg Config) (*MinIO, error) {
	cfg.setDefaults()
	if cfg.Endpoint == "" {
		return nil, errors.New("storage: endpoint is required")
	}
	if cfg.PartSize < 5<<20 {
		return nil, fmt.Errorf("storage: part size %d is below the S3 minimum of 5 MiB", cfg.PartSize)
	}
	scheme := "https"
	if cfg.Insecure {
		scheme = "http"
	}
	internalURL := &url.URL{Scheme: scheme, Host: cfg.Endpoint}
	publicURL := internalURL
	if cfg.PublicURL != "" {
		var err error
		if publicURL, err = ParsePublicURL(cfg.PublicURL); err != nil {
			return nil, err
		}
	}
	internal, err := newClient(cfg, internalURL)
	if err != nil {
		return nil, fmt.Errorf("storage: endpoint: %w", err)
	}
	public, err := newClient(cfg, publicURL)
	if err != nil {
		return nil, fmt.Errorf("storage: public URL: %w", err)
	}
	return &MinIO{cfg: cfg, internal: internal, public: public, publicURL: publicURL}, nil
}

func newClient(cfg Config, u *url.URL) (*minio.Client, error) {
	return minio.New(u.Host, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: u.Scheme == "https",
		// A fixed region keeps signing local: without it minio-go asks the
		// server for the bucket's location first.
		Region: cfg.Region,
	})
}

// ParsePublicURL checks a device-facing base URL: http or https, a host, and
// nothing else (no path, query or credentials).
func ParsePublicURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("storage: public URL: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("storage: public URL %q: scheme must be http or https", raw)
	case u.Host == "":
		return nil, fmt.Errorf("storage: public URL %q: host is missing", raw)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/"):
		return nil, fmt.Errorf("storage: public URL %q: only scheme and host[:port] are allowed", raw)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// PublicURL returns the device-facing base URL that pre-signed URLs use.
func (m *MinIO) PublicURL() *url.URL {
	u := *m.publicURL
	return &u
}

// URLExpiry returns the configured default expiry of pre-signed URLs.
func (m *MinIO) URLExpiry() time.Duration { return m.cfg.URLExpiry }

// Sanitize is the package Sanitize with this client's credentials redacted.
func (m *MinIO) Sanitize(err error) string {
	return Sanitize(err, m.cfg.AccessKey, m.cfg.SecretKey)
}

// EnsureBucket implements Store.
func (m *MinIO) EnsureBucket(ctx context.Context, bucket string) error {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.CallTimeout)
	defer cancel()
	exists, err := m.internal.BucketExists(ctx, bucket)
	if err != nil {
		return fmt.Errorf("checking bucket %s: %w", bucket, err)
	}
	if !exists {
		err = m.internal.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: m.cfg.Region})
		// Another replica may have created it meanwhile.
		if err != nil && minio.ToErrorResponse(err).Code != "BucketAlreadyOwnedByYou" {
			return fmt.Errorf("creating bucket %s: %w", bucket, err)
		}
	}
	policy, err := m.internal.GetBucketPolicy(ctx, bucket)
	if err != nil {
		return fmt.Errorf("reading policy of bucket %s: %w", bucket, err)
	}
	if allowsAnonymous(policy) {
		return fmt.Errorf("bucket %s has a policy that allows anonymous access; firmware buckets must be private", bucket)
	}
	return nil
}

// allowsAnonymous reports whether an S3 bucket policy allows any principal.
// A policy that cannot be parsed counts as public: refusing is the safe side.
func allowsAnonymous(policy string) bool {
	if policy == "" {
		return false
	}
	var doc struct {
		Statement []struct {
			Effect    string
			Principal json.RawMessage
		}
	}
	if err := json.Unmarshal([]byte(policy), &doc); err != nil {
		return true
	}
	for _, st := range doc.Statement {
		if st.Effect == "Allow" && principalIsAnyone(st.Principal) {
			return true
		}
	}
	return false
}

func principalIsAnyone(raw json.RawMessage) bool {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s == "*"
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return false
	}
	var one string
	var many []string
	aws := m["AWS"]
	if json.Unmarshal(aws, &one) == nil {
		return one == "*"
	}
	if json.Unmarshal(aws, &many) == nil {
		for _, p := range many {
			if p == "*" {
				return true
			}
		}
	}
	return false
}

// Put implements Store. The reader is wrapped so that minio-go cannot see an
// io.ReaderAt or io.Seeker: for those it switches to paths that stage
// several parts at once. With a plain reader and a known size it fills one
// part buffer at a time. Reading stops after size bytes, because Go's HTTP
// client refuses a body longer than the request's length; the caller can
// tell a longer source by what is left in it.
func (m *MinIO) Put(ctx context.Context, bucket, key string, r io.Reader, size int64, contentType string) (ObjectInfo, error) {
	if size < 0 {
		return ObjectInfo{}, errors.New("storage: put needs the exact size")
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.TransferTimeout)
	defer cancel()
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	info, err := m.internal.PutObject(ctx, bucket, key, plainReader{io.LimitReader(r, size)}, size, minio.PutObjectOptions{
		ContentType: contentType,
		PartSize:    m.cfg.PartSize,
		NumThreads:  1,
	})
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("putting %s/%s: %w", bucket, key, wrapNotFound(err))
	}
	return ObjectInfo{Bucket: bucket, Key: key, Size: info.Size, ETag: info.ETag,
		ContentType: contentType, LastModified: info.LastModified}, nil
}

// plainReader hides every method but Read.
type plainReader struct{ r io.Reader }

func (p plainReader) Read(b []byte) (int, error) { return p.r.Read(b) }

// Stat implements Store.
func (m *MinIO) Stat(ctx context.Context, bucket, key string) (ObjectInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.CallTimeout)
	defer cancel()
	info, err := m.internal.StatObject(ctx, bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %s/%s: %w", bucket, key, wrapNotFound(err))
	}
	return objectInfo(bucket, info), nil
}

// Get implements Store. The transfer timeout starts now and ends when the
// reader is closed.
func (m *MinIO) Get(ctx context.Context, bucket, key string) (io.ReadCloser, ObjectInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.TransferTimeout)
	obj, err := m.internal.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
	if err != nil {
		cancel()
		return nil, ObjectInfo{}, fmt.Errorf("get %s/%s: %w", bucket, key, wrapNotFound(err))
	}
	// GetObject is lazy; Stat sends the request so a missing object
	// surfaces here rather than on the first Read.
	info, err := obj.Stat()
	if err != nil {
		_ = obj.Close()
		cancel()
		return nil, ObjectInfo{}, fmt.Errorf("get %s/%s: %w", bucket, key, wrapNotFound(err))
	}
	return &cancelOnClose{ReadCloser: obj, cancel: cancel}, objectInfo(bucket, info), nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// PresignGet implements Store.
func (m *MinIO) PresignGet(ctx context.Context, bucket, key string, expiry time.Duration) (*url.URL, error) {
	return m.presign(ctx, http.MethodGet, bucket, key, expiry)
}

// PresignPut implements Store.
func (m *MinIO) PresignPut(ctx context.Context, bucket, key string, expiry time.Duration) (*url.URL, error) {
	return m.presign(ctx, http.MethodPut, bucket, key, expiry)
}

func (m *MinIO) presign(ctx context.Context, method, bucket, key string, expiry time.Duration) (*url.URL, error) {
	if expiry == 0 {
		expiry = m.cfg.URLExpiry
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.CallTimeout)
	defer cancel()
	u, err := m.public.Presign(ctx, method, bucket, key, expiry, nil)
	if err != nil {
		return nil, fmt.Errorf("signing %s %s/%s: %w", method, bucket, key, err)
	}
	return u, nil
}

// Copy implements Store. ComposeObject rather than CopyObject because it
// switches to a multipart copy for sources above the 5 GiB single-copy
// limit.
func (m *MinIO) Copy(ctx context.Context, srcBucket, srcKey, dstBucket, dstKey string) (ObjectInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.TransferTimeout)
	defer cancel()
	info, err := m.internal.ComposeObject(ctx,
		minio.CopyDestOptions{Bucket: dstBucket, Object: dstKey},
		minio.CopySrcOptions{Bucket: srcBucket, Object: srcKey})
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("copying %s/%s to %s/%s: %w", srcBucket, srcKey, dstBucket, dstKey, wrapNotFound(err))
	}
	return ObjectInfo{Bucket: dstBucket, Key: dstKey, Size: info.Size, ETag: info.ETag, LastModified: info.LastModified}, nil
}

// Delete implements Store.
func (m *MinIO) Delete(ctx context.Context, bucket, key string) error {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.CallTimeout)
	defer cancel()
	err := m.internal.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{})
	if err != nil && !errors.Is(wrapNotFound(err), ErrNotFound) {
		return fmt.Errorf("deleting %s/%s: %w", bucket, key, err)
	}
	return nil
}

func objectInfo(bucket string, info minio.ObjectInfo) ObjectInfo {
	return ObjectInfo{Bucket: bucket, Key: info.Key, Size: info.Size, ETag: info.ETag,
		ContentType: info.ContentType, LastModified: info.LastModified}
}

// notFoundError keeps the S3 error for logs while matching ErrNotFound.
type notFoundError struct{ err error }

func (e notFoundError) Error() string   { return e.err.Error() }
func (e notFoundError) Unwrap() []error { return []error{ErrNotFound, e.err} }
func wrapNotFound(err error) error {
	resp := minio.ToErrorResponse(err)
	if resp.Code == "NoSuchKey" || resp.Code == "NoSuchBucket" || resp.StatusCode == http.StatusNotFound {
		return notFoundError{err}
	}
	return err
}
