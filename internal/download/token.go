package download

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"time"
)

const (
	// macBytes of HMAC-SHA256 are kept: 128 bits leave nothing to guess
	// online (each guess is a request) and keep the URL short.
	macBytes   = 16
	tokenBytes = 4 + macBytes
	// tokenChars is the unpadded base64url length of a token.
	tokenChars = (tokenBytes*8 + 5) / 6
)

// macDomain separates these MACs from any other use of the same secret.
const macDomain = "otafleet-download-v1\x00"

// Reasons a path is refused; both answer 403, the metrics tell them apart.
var (
	errForged  = errors.New("forged or malformed download URL")
	errExpired = errors.New("download URL expired")
)

func mac(secret []byte, expiry uint32, key string) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(macDomain))
	h.Write(binary.BigEndian.AppendUint32(nil, expiry))
	h.Write([]byte(key))
	return h.Sum(nil)[:macBytes]
}

func encodeToken(secret []byte, expiry uint32, key string) string {
	raw := binary.BigEndian.AppendUint32(make([]byte, 0, tokenBytes), expiry)
	raw = append(raw, mac(secret, expiry, key)...)
	return base64.RawURLEncoding.EncodeToString(raw)
}

// verifyPath checks "/f/<token>/<key>" and returns the key and the expiry.
// The MAC is checked before the expiry so that "expired" is only ever said
// of a URL we signed.
func verifyPath(secret []byte, path string, now time.Time) (string, time.Time, error) {
	rest, ok := strings.CutPrefix(path, pathPrefix)
	if !ok {
		return "", time.Time{}, errForged
	}
	token, key, ok := strings.Cut(rest, "/")
	if !ok || len(token) != tokenChars || checkKey(key) != nil {
		return "", time.Time{}, errForged
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || len(raw) != tokenBytes {
		return "", time.Time{}, errForged
	}
	expiry := binary.BigEndian.Uint32(raw)
	if !hmac.Equal(raw[4:], mac(secret, expiry, key)) {
		return "", time.Time{}, errForged
	}
	end := time.Unix(int64(expiry), 0)
	if !now.Before(end) {
		return "", time.Time{}, errExpired
	}
	return key, end, nil
}
