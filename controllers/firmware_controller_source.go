package controllers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/storage"
)

// artifactKey is where the image devices download is kept. Every source
// ends up here, written only by this controller, so the digests in status
// stay true for as long as the object exists: an uploader holding a still
// valid PUT URL, or the owner of a source bucket, cannot swap the image
// after it was checked. The UID keeps a re-created Firmware of the same
// name from meeting the old image, and keeps the key short: it is part of
// the download URL devices take, which must stay under 200 bytes. The
// leading underscore keeps artifacts out of every namespace's own prefix
// (namespace names never start with one).
func artifactKey(fw *otav1.Firmware) string {
	return fmt.Sprintf("_img/%s.bin", fw.UID)
}

// uploadKey is where the pre-signed PUT URL of an upload source points.
// Like artifactKey, it starts with an underscore so that no namespace's own
// prefix covers it.
func uploadKey(fw *otav1.Firmware) string {
	return fmt.Sprintf("_up/%s/%s/%s", fw.Namespace, fw.Name, fw.UID)
}

// reconcileArtifact makes sure the image is stored and its digests known.
func (r *FirmwareReconciler) reconcileArtifact(ctx context.Context, s *firmwareScope) error {
	if err := r.ensureBucket(ctx); err != nil {
		s.setStorageError(r.Store.Sanitize(err))
		return err
	}
	fw := s.fw
	if a := fw.Status.Artifact; a != nil {
		info, err := r.Store.Stat(ctx, a.Bucket, a.Key)
		switch {
		case err == nil && info.Size == a.Size:
			fw.Status.Upload = nil
			return nil
		case err != nil && !errors.Is(err, storage.ErrNotFound):
			s.setStorageError(r.Store.Sanitize(err))
			return err
		}
		log.FromContext(ctx).Info("Stored image disappeared or changed; storing it again", "key", a.Key)
		fw.Status.Artifact = nil
	}
	// An image stored but not in status: this reconcile read a cache that
	// has not seen the last status patch yet, or the operator stopped
	// between storing and recording. Check what is stored rather than
	// fetching the source again.
	info, err := r.Store.Stat(ctx, r.Bucket, artifactKey(fw))
	switch {
	case err == nil:
		d, err := r.hashStored(ctx, s, info.Size)
		if err != nil || d == nil {
			return err
		}
		return r.accept(ctx, s, d)
	case !errors.Is(err, storage.ErrNotFound):
		s.setStorageError(r.Store.Sanitize(err))
		return err
	}
	src := fw.Spec.Source
	switch {
	case src.Upload != nil:
		return r.fromUpload(ctx, s)
	case src.URL != nil:
		return r.fromURL(ctx, s)
	case src.Object != nil:
		return r.fromObject(ctx, s)
	}
	s.stall(otav1.ReasonInvalidSpec, "spec.source sets none of upload, url or object")
	return nil
}

// fromUpload waits for the uploader, then takes the upload over.
func (r *FirmwareReconciler) fromUpload(ctx context.Context, s *firmwareScope) error {
	fw := s.fw
	info, err := r.Store.Stat(ctx, r.Bucket, uploadKey(fw))
	if errors.Is(err, storage.ErrNotFound) {
		return r.awaitUpload(ctx, s)
	}
	if err != nil {
		s.setStorageError(r.Store.Sanitize(err))
		return err
	}
	// Take the upload over before checking it, so that a second PUT to the
	// same URL cannot change what was checked.
	d, err := r.adopt(ctx, s, r.Bucket, uploadKey(fw), info.Size)
	if err != nil || d == nil {
		return err
	}
	return r.accept(ctx, s, d)
}

// expectedSHA256 is the digest the spec states for the image, if any.
func expectedSHA256(fw *otav1.Firmware) (want, field string) {
	switch src := fw.Spec.Source; {
	case src.Upload != nil:
		return src.Upload.SHA256, "spec.source.upload.sha256"
	case src.URL != nil:
		return src.URL.SHA256, "spec.source.url.sha256"
	case src.Object != nil:
		return src.Object.SHA256, "spec.source.object.sha256"
	}
	return "", ""
}

// accept records the stored image when its digest is the one the spec
// states, and refuses it otherwise.
func (r *FirmwareReconciler) accept(ctx context.Context, s *firmwareScope, d *storage.Digests) error {
	fw := s.fw
	if fw.Spec.Source.Upload != nil {
		// The upload was taken over (or refused): it has no further use.
		if err := r.Store.Delete(ctx, r.Bucket, uploadKey(fw)); err != nil {
			s.setStorageError(r.Store.Sanitize(err))
			return err
		}
	}
	want, field := expectedSHA256(fw)
	if want == "" || want == d.SHA256 {
		r.record(ctx, s, r.Bucket, d)
		return nil
	}
	msg := fmt.Sprintf("Image has sha256 %s, %s is %s", d.SHA256, field, want)
	if fw.Spec.Source.Upload == nil {
		return r.refuseStored(ctx, s, msg)
	}
	if err := r.Store.Delete(ctx, r.Bucket, artifactKey(fw)); err != nil {
		s.setStorageError(r.Store.Sanitize(err))
		return err
	}
	// Not stalled: uploading the right image fixes it.
	s.block(otav1.ReasonDigestMismatch, msg+"; the upload was deleted, upload the right image", false)
	r.event(fw, corev1.EventTypeWarning, otav1.ReasonDigestMismatch, s.notReady.message)
	return r.awaitUpload(ctx, s)
}

// awaitUpload publishes a pre-signed PUT URL, renewing it before it
// expires, and looks for the upload again after the poll interval.
func (r *FirmwareReconciler) awaitUpload(ctx context.Context, s *firmwareScope) error {
	fw := s.fw
	now := time.Now()
	if up := fw.Status.Upload; up == nil || up.ExpiresAt.Time.Before(now.Add(r.UploadPollInterval+time.Second)) {
		u, err := r.Store.PresignPut(ctx, r.Bucket, uploadKey(fw), r.UploadURLExpiry)
		if err != nil {
			s.setStorageError(r.Store.Sanitize(err))
			return err
		}
		fw.Status.Upload = &otav1.UploadStatus{URL: u.String(),
			ExpiresAt: metav1.NewTime(now.Add(r.UploadURLExpiry).Truncate(time.Second))}
	}
	// Keep a digest mismatch of the previous upload visible while waiting
	// for the next one.
	if c := readyCondition(fw); c != nil && c.Reason == otav1.ReasonDigestMismatch && c.ObservedGeneration == fw.Generation {
		s.block(c.Reason, c.Message, false)
	}
	s.wait(otav1.ReasonWaitingForUpload, fmt.Sprintf(
		"Waiting for the image: upload it with `kubectl ota firmware push` or PUT it to status.upload.url before %s",
		fw.Status.Upload.ExpiresAt.UTC().Format(time.RFC3339)), r.UploadPollInterval)
	return nil
}

// fromURL streams the image from its URL into storage, hashing on the way,
// and refuses it when its size or SHA-256 differ from the spec.
func (r *FirmwareReconciler) fromURL(ctx context.Context, s *firmwareScope) error {
	fw, src := s.fw, s.fw.Spec.Source.URL
	for _, reason := range []string{otav1.ReasonDigestMismatch, ReasonImageTooLarge, ReasonSourceUnusable} {
		if c := s.stalledAtGeneration(reason); c != nil {
			s.stall(c.Reason, c.Message)
			return nil
		}
	}
	// A source server that stops sending would otherwise hold a worker
	// for good: the storage timeout does not reach a read of this body.
	ctx, cancel := context.WithTimeout(ctx, r.DownloadTimeout)
	defer cancel()
	body, size, err := r.open(ctx, src)
	if err != nil {
		var refused *refusal
		if errors.As(err, &refused) {
			s.stall(refused.reason, refused.message)
			return nil
		}
		s.block(ReasonDownloadFailed, "Downloading "+storage.RedactURL(src.URL)+": "+storage.Sanitize(err), false)
		s.halt = true
		return err
	}
	defer body.Close()
	eof := &eofReader{r: body}
	h := storage.NewHashingReader(eof)
	// Put reads exactly size bytes; any left over are checked below.
	if _, err := r.Store.Put(ctx, r.Bucket, artifactKey(fw), h, size, ""); err != nil {
		switch {
		case eof.eof:
			s.stall(otav1.ReasonDigestMismatch, fmt.Sprintf("Image at %s has fewer bytes than the %d stated", storage.RedactURL(src.URL), size))
			return nil
		case eof.err != nil:
			s.block(ReasonDownloadFailed, "Downloading "+storage.RedactURL(src.URL)+": "+storage.Sanitize(eof.err), false)
			s.halt = true
			return eof.err
		}
		s.setStorageError(r.Store.Sanitize(err))
		return err
	}
	d := h.Digests()
	var extra [1]byte
	if n, _ := io.ReadFull(body, extra[:]); n > 0 {
		return r.refuseStored(ctx, s, fmt.Sprintf("Image at %s has more bytes than the %d stated", storage.RedactURL(src.URL), size))
	}
	return r.accept(ctx, s, &d)
}

// refusal is a source that cannot work until the spec changes.
type refusal struct{ reason, message string }

func (e *refusal) Error() string { return e.message }

// open starts the download and works out the exact size, which the bounded
// memory put needs up front.
func (r *FirmwareReconciler) open(ctx context.Context, src *otav1.URLSource) (io.ReadCloser, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.URL, nil)
	if err != nil {
		return nil, 0, &refusal{ReasonSourceUnusable, "spec.source.url.url: " + storage.Sanitize(err)}
	}
	resp, err := r.HTTPClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, 0, fmt.Errorf("HTTP %s", resp.Status)
	}
	size := resp.ContentLength
	switch {
	case src.Size > 0 && size >= 0 && size != src.Size:
		resp.Body.Close()
		return nil, 0, &refusal{otav1.ReasonDigestMismatch, fmt.Sprintf(
			"Image at %s is %d bytes, spec.source.url.size is %d", storage.RedactURL(src.URL), size, src.Size)}
	case src.Size > 0:
		size = src.Size
	case size < 0:
		resp.Body.Close()
		return nil, 0, &refusal{ReasonSourceUnusable, fmt.Sprintf(
			"The server of %s does not state the image's size; set spec.source.url.size", storage.RedactURL(src.URL))}
	}
	if size > r.MaxImageSize {
		resp.Body.Close()
		return nil, 0, &refusal{ReasonImageTooLarge, fmt.Sprintf("Image is %d bytes, the limit is %d", size, r.MaxImageSize)}
	}
	return resp.Body, size, nil
}

// eofReader remembers how its source ended, to tell a short source or a
// failed download from a storage failure.
type eofReader struct {
	r   io.Reader
	eof bool
	err error
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	switch {
	case errors.Is(err, io.EOF):
		e.eof = true
	case err != nil:
		e.err = err
	}
	return n, err
}

// fromObject copies an existing object in, then hashes the copy.
func (r *FirmwareReconciler) fromObject(ctx context.Context, s *firmwareScope) error {
	src := s.fw.Spec.Source.Object
	if c := s.stalledAtGeneration(otav1.ReasonDigestMismatch); c != nil {
		s.stall(c.Reason, c.Message)
		return nil
	}
	if msg := objectOutside(s.fw.Namespace, r.Bucket, src.Bucket, src.Key, r.SharedObjectPrefixes); msg != "" {
		s.stall(otav1.ReasonObjectOutsideNamespace, msg)
		return nil
	}
	bucket := src.Bucket
	if bucket == "" {
		bucket = r.Bucket
	}
	info, err := r.Store.Stat(ctx, bucket, src.Key)
	if errors.Is(err, storage.ErrNotFound) {
		s.wait(ReasonSourceNotFound, fmt.Sprintf("Object %s/%s not found", bucket, src.Key), 30*time.Second)
		return nil
	}
	if err != nil {
		s.setStorageError(r.Store.Sanitize(err))
		return err
	}
	d, err := r.adopt(ctx, s, bucket, src.Key, info.Size)
	if err != nil || d == nil {
		return err
	}
	return r.accept(ctx, s, d)
}

// adopt copies bucket/key to the artifact key and hashes the copy. It
// returns nil digests when the scope was blocked.
func (r *FirmwareReconciler) adopt(ctx context.Context, s *firmwareScope, bucket, key string, size int64) (*storage.Digests, error) {
	if size > r.MaxImageSize {
		s.stall(ReasonImageTooLarge, fmt.Sprintf("Image is %d bytes, the limit is %d", size, r.MaxImageSize))
		return nil, nil
	}
	if _, err := r.Store.Copy(ctx, bucket, key, r.Bucket, artifactKey(s.fw)); err != nil {
		s.setStorageError(r.Store.Sanitize(err))
		return nil, err
	}
	return r.hashStored(ctx, s, size)
}

// hashStored computes the digests of the stored image by reading it once,
// in bounded memory.
func (r *FirmwareReconciler) hashStored(ctx context.Context, s *firmwareScope, size int64) (*storage.Digests, error) {
	if size > r.MaxImageSize {
		s.stall(ReasonImageTooLarge, fmt.Sprintf("Image is %d bytes, the limit is %d", size, r.MaxImageSize))
		return nil, nil
	}
	rc, _, err := r.Store.Get(ctx, r.Bucket, artifactKey(s.fw))
	if err != nil {
		s.setStorageError(r.Store.Sanitize(err))
		return nil, err
	}
	defer rc.Close()
	d, err := storage.CopyAndHash(io.Discard, rc)
	if err != nil {
		s.setStorageError(r.Store.Sanitize(err))
		return nil, err
	}
	return &d, nil
}

// refuseStored deletes an image that failed its check and stalls.
func (r *FirmwareReconciler) refuseStored(ctx context.Context, s *firmwareScope, msg string) error {
	if err := r.Store.Delete(ctx, r.Bucket, artifactKey(s.fw)); err != nil {
		s.setStorageError(r.Store.Sanitize(err))
		return err
	}
	s.stall(otav1.ReasonDigestMismatch, msg+"; the image was refused")
	return nil
}

// record writes the stored image into status.
func (r *FirmwareReconciler) record(ctx context.Context, s *firmwareScope, bucket string, d *storage.Digests) {
	s.fw.Status.Artifact = &otav1.Artifact{Bucket: bucket, Key: artifactKey(s.fw), Size: d.Size, MD5: d.MD5, SHA256: d.SHA256}
	s.fw.Status.Upload = nil
	log.FromContext(ctx).Info("Stored firmware image", "key", artifactKey(s.fw), "size", d.Size, "sha256", d.SHA256)
}
