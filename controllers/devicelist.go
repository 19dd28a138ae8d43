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
}

// objectList returns the names in bucket/key for a batch.
func (r *UpgradeBatchReconciler) objectList(ctx context.Context, ub *otav1.UpgradeBatch, src *otav1.ObjectSource) ([]string, error) {
	if r.Objects == nil {
		return nil, &waitError{reason: otav1.ReasonInvalidSpec, stalled: true, message: "no object storage is configured for devicesFrom.object"}
	}
	if msg := objectOutside(ub.Namespace, r.Bucket, src.Bucket, src.Key, r.SharedObjectPrefixes); msg != "" {
		return nil, objectRefused(msg)
	}
	bucket := src.Bucket
	if bucket == "" {
		bucket = r.Bucket
	}
	info, err := r.Objects.Stat(ctx, bucket, src.Key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, &waitError{reason: otav1.ReasonInvalidSpec, message: fmt.Sprintf("device list object %s/%s not found", bucket, src.Key)}
	} else if err != nil {
		return nil, err
	}
	r.lists.mu.Lock()
	cached, ok := r.lists.lists[client.ObjectKeyFromObject(ub)]
	r.lists.mu.Unlock()
	if ok && cached.etag == info.ETag {
		return cached.names, nil
	}
	if info.Size > maxListObject {
		return nil, &waitError{reason: otav1.ReasonInvalidSpec, stalled: true,
			message: fmt.Sprintf("device list object %s/%s is %d bytes, more than the %d allowed", bucket, src.Key, info.Size, maxListObject)}
	}
	rc, _, err := r.Objects.Get(ctx, bucket, src.Key)
	if err != nil {
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
	r.lists.mu.Lock()
	if r.lists.lists == nil {
		r.lists.lists = map[types.NamespacedName]cachedList{}
	}
	r.lists.lists[client.ObjectKeyFromObject(ub)] = cachedList{etag: info.ETag, names: names}
	r.lists.mu.Unlock()
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
