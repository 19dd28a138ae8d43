package download

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Limits of what a device can take (PROTOCOL.md: the vendor SDK copies host
// and path into 256-byte buffers without a check; keep the URL under 200).
const (
	// MaxURLBytes is the longest whole URL URL returns.
	MaxURLBytes = 199
	// MaxPathBytes is the longest path (query included, and we send none).
	MaxPathBytes = 255
	// MaxHostBytes is the longest host name of the base URL.
	MaxHostBytes = 255
	// MinSecretBytes is the shortest HMAC secret accepted: 256 bits.
	MinSecretBytes = 32
	// MaxTTL bounds a URL's lifetime, as S3 bounds pre-signed URLs.
	MaxTTL = 7 * 24 * time.Hour
)

// pathPrefix starts every signed path; one letter keeps URLs short.
const pathPrefix = "/f/"

// Signer makes device download URLs; see the package doc for their format,
// expiry grid and limits. It is safe for concurrent use.
type Signer struct {
	base   string // scheme://host, no trailing slash
	secret []byte
	ttl    time.Duration
	grid   int64 // seconds

	// signed keeps each key's URL of the current grid step: every push of
	// a rollout names the same image, and its URL only changes with the
	// step, so one HMAC a step serves them all.
	mu     sync.Mutex
	signed map[string]signedURL
}

type signedURL struct {
	expiry uint32
	url    string
}

// maxSigned bounds the cache: far more images than a replica pushes at once.
const maxSigned = 1024

// NewSigner checks base (http or https, a host, nothing else: devices
// ignore ports and overflow on long hosts) and returns a Signer whose URLs
// are valid for ttl (up to ttl/4 longer, see the package doc).
func NewSigner(base string, secret []byte, ttl time.Duration) (*Signer, error) {
	u, err := checkBase(base)
	if err != nil {
		return nil, err
	}
	if err := checkSecret(secret); err != nil {
		return nil, err
	}
	if ttl < time.Second || ttl > MaxTTL {
		return nil, fmt.Errorf("download URL lifetime %s is out of range: give 1s to %s (default 15m)", ttl, MaxTTL)
	}
	grid := int64(ttl / 4 / time.Second)
	return &Signer{base: u, secret: bytes.Clone(secret), ttl: ttl, grid: max(grid, 1), signed: map[string]signedURL{}}, nil
}

// checkBase returns the normalized base URL or an error that tells the
// operator what to change.
func checkBase(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("download base URL %q does not parse: %w", base, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("download base URL %q: the scheme must be http or https, as in https://firmware.example.com", base)
	case u.Opaque != "" || u.Host == "":
		return "", fmt.Errorf("download base URL %q has no host; write it as %s://firmware.example.com", base, u.Scheme)
	case u.User != nil:
		return "", fmt.Errorf("download base URL %q carries user information; devices send no credentials and "+
			"the vendor SDK takes everything before the first / as the host name: give %s://host only", base, u.Scheme)
	case u.Port() != "" || strings.HasSuffix(u.Host, ":"):
		return "", portError(base, u)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || (u.Path != "" && u.Path != "/"):
		return "", fmt.Errorf("download base URL %q has a path, query or fragment; give %s://%s only "+
			"(the service serves its own paths at the root)", base, u.Scheme, u.Host)
	}
	if err := checkHost(u.Host); err != nil {
		return "", fmt.Errorf("download base URL %q: %w", base, err)
	}
	return u.Scheme + "://" + u.Host, nil
}

func portError(base string, u *url.URL) error {
	def := map[string]string{"http": "80", "https": "443"}[u.Scheme]
	port := u.Port()
	if port == "" {
		port = "(empty)"
	}
	return fmt.Errorf("download base URL %q names port %s; devices built on the vendor SDK ignore ports "+
		"(http goes to 80, https to 443) and take host:port as a host name that never resolves: "+
		"serve the download service on port %s (its Service maps 80 to the pod, or use an ingress) "+
		"and give the URL without a port, e.g. %s://%s", base, port, def, u.Scheme, u.Hostname())
}

// checkHost allows DNS names and IPv4 addresses: the vendor SDK resolves
// the host by name, so an IPv6 literal in brackets never works.
func checkHost(host string) error {
	if len(host) > MaxHostBytes {
		return fmt.Errorf("the host is %d bytes; devices overflow a 256-byte buffer, keep it under %d", len(host), MaxHostBytes+1)
	}
	for _, c := range []byte(host) {
		if !isAlnum(c) && c != '-' && c != '.' && c != '_' {
			return fmt.Errorf("the host %q may hold only letters, digits, '-', '_' and '.' (punycode for international names; no IPv6 literals)", host)
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// ParseSecret turns the contents of a secret file or Kubernetes Secret key
// into the HMAC secret. Surrounding whitespace is dropped, because a file
// written by echo ends in a newline; the manager and the service must both
// read the secret through here so that they agree on its bytes.
func ParseSecret(raw []byte) ([]byte, error) {
	secret := bytes.TrimSpace(raw)
	return secret, checkSecret(secret)
}

func checkSecret(secret []byte) error {
	if len(secret) < MinSecretBytes {
		return fmt.Errorf("the download URL secret is %d bytes; it needs at least %d "+
			"(e.g. head -c 48 /dev/urandom | base64 -w0)", len(secret), MinSecretBytes)
	}
	return nil
}

// URL returns the device URL of key, valid from now until its expiry.
func (s *Signer) URL(key string, now time.Time) (string, error) {
	expiry, err := s.expiry(now)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	c, ok := s.signed[key]
	s.mu.Unlock()
	if ok && c.expiry == expiry {
		return c.url, nil
	}
	full, err := s.sign(key, expiry)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	if len(s.signed) >= maxSigned {
		clear(s.signed)
	}
	s.signed[key] = signedURL{expiry, full}
	s.mu.Unlock()
	return full, nil
}

// sign makes the URL of key expiring at expiry.
func (s *Signer) sign(key string, expiry uint32) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	path := pathPrefix + encodeToken(s.secret, expiry, key) + "/" + key
	if len(path) > MaxPathBytes {
		return "", fmt.Errorf("download path for object key %q is %d bytes; devices take at most %d: use a shorter key", key, len(path), MaxPathBytes)
	}
	full := s.base + path
	if len(full) > MaxURLBytes {
		return "", fmt.Errorf("download URL for object key %q is %d bytes; devices take at most %d: use a shorter key or host", key, len(full), MaxURLBytes)
	}
	return full, nil
}

// expiry rounds now+ttl up to the grid, so that all URLs of a key signed in
// one grid step are identical (CDN mode, see the package doc).
func (s *Signer) expiry(now time.Time) (uint32, error) {
	end := now.Add(s.ttl).Unix()
	end = (end + s.grid - 1) / s.grid * s.grid
	if end <= 0 || end > math.MaxUint32 {
		return 0, fmt.Errorf("download URL expiry %d is outside the token's range", end)
	}
	return uint32(end), nil
}

// checkKey allows keys that need no escaping anywhere between the manager's
// JSON and the store: the vendor SDK neither escapes nor unescapes, and a
// "." or empty segment could be rewritten by a proxy or CDN on the way.
func checkKey(key string) error {
	if key == "" {
		return errors.New("download URL: the object key is empty")
	}
	for _, c := range []byte(key) {
		if !isAlnum(c) && !strings.ContainsRune("-._~/", rune(c)) {
			return fmt.Errorf("object key %q has characters devices cannot take unescaped; use only letters, digits and -._~/", key)
		}
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("object key %q has an empty, \".\" or \"..\" segment, which proxies rewrite", key)
		}
	}
	return nil
}
