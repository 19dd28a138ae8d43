package storage

import (
	"crypto/md5" //nolint:gosec // MD5 is part of the device protocol, not a security control.
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
)

// Digests are what the operator computes itself over an image's bytes.
type Digests struct {
	// Size in bytes.
	Size int64
	// MD5 in lower-case hex; devices of older SDKs always read it.
	MD5 string
	// SHA256 in lower-case hex.
	SHA256 string
}

// HashingReader computes size, MD5 and SHA-256 of everything read through
// it, in the same pass as the copy, so an image is read once and never held
// in memory.
type HashingReader struct {
	r      io.Reader
	md5    hash.Hash
	sha256 hash.Hash
	n      int64
}

// NewHashingReader wraps r.
func NewHashingReader(r io.Reader) *HashingReader {
	return &HashingReader{r: r, md5: md5.New(), sha256: sha256.New()} //nolint:gosec // see import
}

// Read implements io.Reader.
func (h *HashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if n > 0 {
		// hash.Hash.Write never returns an error.
		h.md5.Write(p[:n])
		h.sha256.Write(p[:n])
		h.n += int64(n)
	}
	return n, err
}

// Digests returns the digests of the bytes read so far.
func (h *HashingReader) Digests() Digests {
	return Digests{
		Size:   h.n,
		MD5:    hex.EncodeToString(h.md5.Sum(nil)),
		SHA256: hex.EncodeToString(h.sha256.Sum(nil)),
	}
}

// CopyAndHash copies src to dst with a 32 KiB buffer and returns the digests
// of what was copied. Pass io.Discard as dst to only hash.
func CopyAndHash(dst io.Writer, src io.Reader) (Digests, error) {
	h := NewHashingReader(src)
	// Hide WriterTo/ReaderFrom so io.Copy keeps its fixed-size buffer.
	_, err := io.Copy(struct{ io.Writer }{dst}, struct{ io.Reader }{h})
	return h.Digests(), err
}
