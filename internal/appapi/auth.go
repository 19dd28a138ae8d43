package appapi

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/otafleet/otafleet/internal/protocol"
)

// Claims are what the app backend puts in a token besides the registered
// claims: the devices the user administers and those shared with the user
// read-only, each "productKey/deviceName".
type Claims struct {
	jwt.RegisteredClaims
	Devices []string `json:"devices,omitempty"`
	Shared  []string `json:"shared,omitempty"`
}

// device names one device of one product.
type device struct{ pk, dn string }

func (d device) String() string { return d.pk + "/" + d.dn }

func parseDevice(s string) (device, bool) {
	pk, dn, ok := strings.Cut(s, "/")
	if !ok || !protocol.ValidSegment(pk) || !protocol.ValidSegment(dn) {
		return device{}, false
	}
	return device{pk, dn}, true
}

// access is what a caller may do with a device.
type access uint8

const (
	accessNone  access = iota
	accessRead         // shared read-only
	accessAdmin        // read, confirm, cancel
)

// caller is an authenticated user and the devices the token binds to it.
type caller struct {
	user    string
	expires time.Time
	access  map[device]access
	// order lists the devices as the token does, so lists are stable.
	order []device
}

func (c *caller) can(d device) access { return c.access[d] }

// Reasons of authentication failures, the "reason" label of
// auth_failures_total.
const (
	authMissing = "missing"
	authExpired = "expired"
	authInvalid = "invalid"
)

// authError is a refused token; reason is for metrics and the client.
type authError struct {
	reason string
	err    error
}

func (e *authError) Error() string { return e.reason + ": " + e.err.Error() }
func (e *authError) Unwrap() error { return e.err }

// verifier checks bearer tokens.
type verifier struct {
	keys      Keys
	parser    *jwt.Parser
	maxDevice int
}

// ecdsaMethods maps a curve's size to the one algorithm that uses it.
var ecdsaMethods = map[int]string{256: "ES256", 384: "ES384", 521: "ES512"}

func newVerifier(cfg *Config) *verifier {
	return &verifier{
		keys: cfg.Keys,
		parser: jwt.NewParser(
			// The allowed algorithms follow from the key types: this is what
			// keeps "none" and HMAC-with-a-public-key out.
			jwt.WithValidMethods(validMethods(cfg.Keys)),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithLeeway(cfg.Leeway),
			jwt.WithTimeFunc(cfg.Now),
		),
		maxDevice: cfg.MaxTokenDevices,
	}
}

func validMethods(k Keys) []string {
	var out []string
	seen := map[string]bool{}
	add := func(ms ...string) {
		for _, m := range ms {
			if !seen[m] {
				seen[m] = true
				out = append(out, m)
			}
		}
	}
	if len(k.HMACSecret) > 0 {
		add("HS256", "HS384", "HS512")
	}
	for _, p := range k.PublicKeys {
		switch p := p.(type) {
		case *rsa.PublicKey:
			add("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
		case *ecdsa.PublicKey:
			add(ecdsaMethods[p.Curve.Params().BitSize])
		case ed25519.PublicKey:
			add("EdDSA")
		}
	}
	return out
}

// keyFor returns the keys that may verify a token signed with its
// algorithm; the parser has already refused algorithms outside the list.
func (v *verifier) keyFor(t *jwt.Token) (any, error) {
	if _, ok := t.Method.(*jwt.SigningMethodHMAC); ok {
		if len(v.keys.HMACSecret) == 0 {
			return nil, errors.New("no HMAC secret")
		}
		return v.keys.HMACSecret, nil
	}
	var set jwt.VerificationKeySet
	for _, p := range v.keys.PublicKeys {
		if keyFits(t.Method, p) {
			set.Keys = append(set.Keys, p)
		}
	}
	switch len(set.Keys) {
	case 0:
		return nil, fmt.Errorf("no key for algorithm %s", t.Method.Alg())
	case 1:
		return set.Keys[0], nil
	}
	return set, nil
}

func keyFits(m jwt.SigningMethod, p any) bool {
	switch p := p.(type) {
	case *rsa.PublicKey:
		switch m.(type) {
		case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS:
			return true
		}
	case *ecdsa.PublicKey:
		return m.Alg() == ecdsaMethods[p.Curve.Params().BitSize]
	case ed25519.PublicKey:
		_, ok := m.(*jwt.SigningMethodEd25519)
		return ok
	}
	return false
}

// verify authenticates the value of an Authorization header.
func (v *verifier) verify(header string) (*caller, error) {
	scheme, raw, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "" {
		return nil, &authError{authMissing, errors.New("no bearer token")}
	}
	var cl Claims
	if _, err := v.parser.ParseWithClaims(strings.TrimSpace(raw), &cl, v.keyFor); err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, &authError{authExpired, err}
		}
		return nil, &authError{authInvalid, err}
	}
	c, err := v.callerOf(&cl)
	if err != nil {
		return nil, &authError{authInvalid, err}
	}
	return c, nil
}

func (v *verifier) callerOf(cl *Claims) (*caller, error) {
	if cl.Subject == "" || cl.ExpiresAt == nil {
		return nil, errors.New("the token has no sub or no exp")
	}
	if n := len(cl.Devices) + len(cl.Shared); n > v.maxDevice {
		return nil, fmt.Errorf("the token names %d devices, more than %d", n, v.maxDevice)
	}
	c := &caller{user: cl.Subject, expires: cl.ExpiresAt.Time,
		access: make(map[device]access, len(cl.Devices)+len(cl.Shared))}
	// Administered devices first, so that a device in both lists keeps the
	// stronger right.
	for _, l := range []struct {
		names []string
		a     access
	}{{cl.Devices, accessAdmin}, {cl.Shared, accessRead}} {
		for _, s := range l.names {
			d, ok := parseDevice(s)
			if !ok {
				return nil, fmt.Errorf("device %q in the token is not productKey/deviceName", s)
			}
			if c.access[d] == accessNone {
				c.access[d] = l.a
				c.order = append(c.order, d)
			}
		}
	}
	return c, nil
}
