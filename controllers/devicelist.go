package controllers

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/storage"
)

// maxListObject bounds a device list read from object storage: 1,000,000
// names of up to 64 characters and their newlines.
const maxListObject = 65 << 20

// ObjectReader reads device lists from object storage.
type ObjectReader interface {
	Stat(ctx context.Context, bucket, key string) (storage.ObjectInfo, error)
	Get(ctx context.Context, bucket, key string) (io.ReadCloser, storage.ObjectInfo, error)
}

// listRecheck is how long an object's version is trusted before it is
// looked up again: a status read must not cost a storage request, and a
// changed list is noticed within this time.
const listRecheck = 30 * time.Second

// listCache keeps the device lists read from objects, by batch name, so that a
// list of a million names is read once per version of the object, not on
// every reconcile.
type listCache struct {
	mu    sync.Mutex
	lists map[types.NamespacedName]cachedList
}

type cachedList struct {
	etag  string
	names []string
	// seen is the object's version at its last lookup, at checked.
	seen    string
	checked time.Time
}

func (c *listCache) get(nn types.NamespacedName) cachedList {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lists[nn]
}

func (c *listCache) put(nn types.NamespacedName, l cachedList) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lists == nil {
		c.lists = map[types.NamespacedName]cachedList{}
	}
	c.lists[nn] = l
}

// objectSource checks a batch may read src and returns its bucket.
func (r *UpgradeBatchReconciler) objectSource(ub *otav1.UpgradeBatch, src *otav1.ObjectSource) (string, error) {
	if r.Objects == nil {
		return "", &waitError{reason: otav1.ReasonInvalidSpec, stalled: true, message: "no object storage is configured for devicesFrom.object"}
	}
	if msg := objectOutside(ub.Namespace, r.Bucket, src.Bucket, src.Key, r.SharedObjectPrefixes); msg != "" {
		return "", objectRefused(msg)
	}
	if src.Bucket != "" {
		return src.Bucket, nil
	}
	return r.Bucket, nil
}

// objectVersion returns the ETag of a batch's list object, looked up at
// most once per listRecheck.
func (r *UpgradeBatchReconciler) objectVersion(ctx context.Context, ub *otav1.UpgradeBatch, src *otav1.ObjectSource) (string, error) {
	bucket, err := r.objectSource(ub, src)
	if err != nil {
		return "", err
	}
	nn := client.ObjectKeyFromObject(ub)
	cached := r.lists.get(nn)
	if cached.seen != "" && time.Since(cached.checked) < listRecheck {
		return cached.seen, nil
	}
	info, err := r.Objects.Stat(ctx, bucket, src.Key)
	if errors.Is(err, storage.ErrNotFound) {
		return "", &waitError{reason: otav1.ReasonInvalidSpec, message: fmt.Sprintf("device list object %s/%s not found", bucket, src.Key)}
	} else if err != nil {
		return "", err
	}
	if info.Size > maxListObject {
		return "", &waitError{reason: otav1.ReasonInvalidSpec, stalled: true,
			message: fmt.Sprintf("device list object %s/%s is %d bytes, more than the %d allowed", bucket, src.Key, info.Size, maxListObject)}
	}
	cached.seen, cached.checked = info.ETag, time.Now()
	r.lists.put(nn, cached)
	return info.ETag, nil
}

// objectList returns the names in a batch's list object at version etag.
func (r *UpgradeBatchReconciler) objectList(ctx context.Context, ub *otav1.UpgradeBatch, src *otav1.ObjectSource, etag string) ([]string, error) {
	bucket, err := r.objectSource(ub, src)
	if err != nil {
		return nil, err
	}
	nn := client.ObjectKeyFromObject(ub)
	cached := r.lists.get(nn)
	if cached.names != nil && cached.etag == etag {
		return cached.names, nil
	}
	rc, info, err := r.Objects.Get(ctx, bucket, src.Key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, &waitError{reason: otav1.ReasonInvalidSpec, message: fmt.Sprintf("device list object %s/%s not found", bucket, src.Key)}
	} else if err != nil {
		return nil, err
	}
	defer rc.Close()
	h := sha256.New()
	names, err := readDeviceList(io.TeeReader(io.LimitReader(rc, maxListObject), h))
	if err != nil {
		return nil, err
	}
	if sum := hex.EncodeToString(h.Sum(nil)); src.SHA256 != "" && sum != src.SHA256 {
		return nil, &waitError{reason: otav1.ReasonDigestMismatch, stalled: true,
			message: fmt.Sprintf("device list object %s/%s has sha256 %s, not the %s the batch names", bucket, src.Key, sum, src.SHA256)}
	}
	// The names are of the version read, which may be newer than etag.
	cached.etag, cached.names = info.ETag, names
	cached.seen, cached.checked = info.ETag, time.Now()
	r.lists.put(nn, cached)
	return names, nil
}

// forget drops a deleted batch's cached list.
func (c *listCache) forget(nn types.NamespacedName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.lists, nn)
}

// readDeviceList reads one device name a line, ignoring blank lines and '#'
// comments.
func readDeviceList(r io.Reader) ([]string, error) {
	names := []string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			names = append(names, line)
		}
	}
	return names, sc.Err()
}

func parseDeviceList(text string) []string {
	names, _ := readDeviceList(strings.NewReader(text)) // a string reader does not fail
	return names
}
