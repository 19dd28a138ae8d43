// Package signature checks Ed25519 signatures of firmware images.
//
// The signed message is the image's SHA-256 digest (32 raw bytes), not the
// image itself. Pure Ed25519 needs the whole message in memory twice over
// (it hashes it twice), which neither the operator (images of hundreds of
// MiB, bounded memory) nor a microcontroller can afford; signing the digest
// is what device bootloaders such as MCUboot do, and the digest is computed
// anyway while the image streams into storage.
package signature

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid means the signature does not match the image and key.
var ErrInvalid = errors.New("signature does not match the image's SHA-256 under the given public key")

// ParsePublicKey accepts an Ed25519 public key as PEM ("PUBLIC KEY", PKIX),
// as base64 of the 32 raw bytes, or as the 32 raw bytes themselves.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	trimmed := bytes.TrimSpace(data)
	if block, _ := pem.Decode(trimmed); block != nil {
		return parsePEM(block)
	}
	if len(data) == ed25519.PublicKeySize {
		return ed25519.PublicKey(bytes.Clone(data)), nil
	}
	raw, err := decodeBase64(string(trimmed))
	if err != nil {
		return nil, errors.New("public key is neither PEM nor base64")
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key has %d bytes, an Ed25519 key has %d", len(raw), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}

func parsePEM(block *pem.Block) (ed25519.PublicKey, error) {
	if block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("PEM block is %q, want \"PUBLIC KEY\"", block.Type)
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing PEM public key: %w", err)
	}
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key is %T, not Ed25519", key)
	}
	return pub, nil
}

// VerifyDigest checks sig (base64) against the image's SHA-256 given in
// lower-case hex.
func VerifyDigest(pub ed25519.PublicKey, sha256Hex, sig string) error {
	digest, err := hex.DecodeString(sha256Hex)
	if err != nil || len(digest) != 32 {
		return fmt.Errorf("SHA-256 %q is not 64 hex characters", sha256Hex)
	}
	rawSig, err := decodeBase64(strings.TrimSpace(sig))
	if err != nil {
		return errors.New("signature is not base64")
	}
	if len(rawSig) != ed25519.SignatureSize {
		return fmt.Errorf("signature has %d bytes, an Ed25519 signature has %d", len(rawSig), ed25519.SignatureSize)
	}
	if !ed25519.Verify(pub, digest, rawSig) {
		return ErrInvalid
	}
	return nil
}

// Sign signs an image's SHA-256 (hex) the way VerifyDigest checks it and
// returns base64, for tools and tests that produce signed images.
func Sign(priv ed25519.PrivateKey, sha256Hex string) (string, error) {
	digest, err := hex.DecodeString(sha256Hex)
	if err != nil || len(digest) != 32 {
		return "", fmt.Errorf("SHA-256 %q is not 64 hex characters", sha256Hex)
	}
	return base64.StdEncoding.EncodeToString(ed25519.Sign(priv, digest)), nil
}

// decodeBase64 accepts standard and URL-safe alphabets, padded or not.
func decodeBase64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}
