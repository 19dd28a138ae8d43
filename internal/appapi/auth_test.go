package appapi

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func verifierFor(t *testing.T, keys Keys) *verifier {
	t.Helper()
	cfg := testConfig()
	cfg.Keys = keys
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	return newVerifier(&cfg)
}

// TestEachKeyTypeVerifies signs with every supported algorithm and checks
// that the matching key accepts the token and the other key types do not.
func TestEachKeyTypeVerifies(t *testing.T) {
	k := testKeys()
	keySets := map[string]Keys{
		"hmac":    {HMACSecret: testSecret},
		"rsa":     {PublicKeys: []crypto.PublicKey{&k.rsa.PublicKey}},
		"ec256":   {PublicKeys: []crypto.PublicKey{&k.ec256.PublicKey}},
		"ec384":   {PublicKeys: []crypto.PublicKey{&k.ec384.PublicKey}},
		"ed25519": {PublicKeys: []crypto.PublicKey{k.ed.Public()}},
	}
	tokens := []struct {
		name, keys string
		method     jwt.SigningMethod
		key        any
	}{
		{"HS256", "hmac", jwt.SigningMethodHS256, testSecret},
		{"HS512", "hmac", jwt.SigningMethodHS512, testSecret},
		{"RS256", "rsa", jwt.SigningMethodRS256, k.rsa},
		{"PS384", "rsa", jwt.SigningMethodPS384, k.rsa},
		{"ES256", "ec256", jwt.SigningMethodES256, k.ec256},
		{"ES384", "ec384", jwt.SigningMethodES384, k.ec384},
		{"EdDSA", "ed25519", jwt.SigningMethodEdDSA, k.ed},
	}
	for _, tc := range tokens {
		tok := sign(t, tc.method, tc.key, claims("alice", "pk/d1"))
		for name, keys := range keySets {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				c, err := verifierFor(t, keys).verify("Bearer " + tok)
				if name == tc.keys {
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					if c.user != "alice" || c.can(device{"pk", "d1"}) != accessAdmin {
						t.Fatalf("caller %+v", c)
					}
				} else if err == nil {
					t.Fatalf("a %s token was accepted by %s keys", tc.name, name)
				}
			})
		}
	}
}

func TestRefusedTokens(t *testing.T) {
	k := testKeys()
	hmacV := verifierFor(t, Keys{HMACSecret: testSecret})
	rsaV := verifierFor(t, Keys{PublicKeys: []crypto.PublicKey{&k.rsa.PublicKey}})
	with := func(f func(*Claims)) *Claims { c := claims("alice", "pk/d1"); f(c); return c }
	past := time.Now().Add(-time.Hour)
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&k.rsa.PublicKey))})
	many := make([]string, 1001)
	for i := range many {
		many[i] = fmt.Sprintf("pk/d%d", i)
	}
	unsigned, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims("alice", "pk/d1")).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		v      *verifier
		header string
		reason string
	}{
		{"no header", hmacV, "", authMissing},
		{"basic scheme", hmacV, "Basic " + hmacToken(t, claims("alice")), authMissing},
		{"empty bearer", hmacV, "Bearer ", authMissing},
		{"garbage", hmacV, "Bearer not.a.jwt", authInvalid},
		{"expired", hmacV, "Bearer " + hmacToken(t, with(func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(past) })), authExpired},
		{"no exp", hmacV, "Bearer " + hmacToken(t, with(func(c *Claims) { c.ExpiresAt = nil })), authInvalid},
		{"unsigned (none)", hmacV, "Bearer " + unsigned, authInvalid},
		{"unsigned (none) to public keys", rsaV, "Bearer " + unsigned, authInvalid},
		{"wrong secret", hmacV, "Bearer " + sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 40)), claims("alice")), authInvalid},
		{"signed by another RSA key", rsaV, "Bearer " + sign(t, jwt.SigningMethodRS256, otherRSA(t), claims("alice")), authInvalid},
		// The classic confusion: the public key used as an HMAC secret.
		{"HMAC with the public key", rsaV, "Bearer " + sign(t, jwt.SigningMethodHS256, rsaPEM, claims("alice")), authInvalid},
		{"wrong audience", hmacV, "Bearer " + hmacToken(t, with(func(c *Claims) { c.Audience = jwt.ClaimStrings{"someone-else"} })), authInvalid},
		{"no audience", hmacV, "Bearer " + hmacToken(t, with(func(c *Claims) { c.Audience = nil })), authInvalid},
		{"wrong issuer", hmacV, "Bearer " + hmacToken(t, with(func(c *Claims) { c.Issuer = "https://evil.example" })), authInvalid},
		{"not yet valid", hmacV, "Bearer " + hmacToken(t, with(func(c *Claims) { c.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Hour)) })), authInvalid},
		{"issued in the future", hmacV, "Bearer " + hmacToken(t, with(func(c *Claims) { c.IssuedAt = jwt.NewNumericDate(time.Now().Add(time.Hour)) })), authInvalid},
		{"no sub", hmacV, "Bearer " + hmacToken(t, with(func(c *Claims) { c.Subject = "" })), authInvalid},
		{"malformed device", hmacV, "Bearer " + hmacToken(t, with(func(c *Claims) { c.Devices = []string{"no-slash"} })), authInvalid},
		{"wildcard device", hmacV, "Bearer " + hmacToken(t, with(func(c *Claims) { c.Shared = []string{"pk/#"} })), authInvalid},
		{"too many devices", hmacV, "Bearer " + hmacToken(t, with(func(c *Claims) { c.Devices = many })), authInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.v.verify(tc.header)
			if err == nil {
				t.Fatalf("accepted as %+v", c)
			}
			var ae *authError
			if !errors.As(err, &ae) || ae.reason != tc.reason {
				t.Fatalf("error %v, want reason %s", err, tc.reason)
			}
		})
	}
}

func TestLeewayToleratesSkew(t *testing.T) {
	v := verifierFor(t, Keys{HMACSecret: testSecret})
	c := claims("alice")
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-10 * time.Second))
	if _, err := v.verify("Bearer " + hmacToken(t, c)); err != nil {
		t.Fatalf("a token expired 10s ago is within the 30s leeway: %v", err)
	}
}

func TestClaimsGiveAccess(t *testing.T) {
	v := verifierFor(t, Keys{HMACSecret: testSecret})
	cl := claims("alice", "pk/mine", "pk/both")
	cl.Shared = []string{"pk/shared", "pk/both"}
	c, err := v.verify("bearer " + hmacToken(t, cl)) // the scheme is case-insensitive
	if err != nil {
		t.Fatal(err)
	}
	for d, want := range map[device]access{
		{"pk", "mine"}: accessAdmin, {"pk", "both"}: accessAdmin, {"pk", "shared"}: accessRead,
		{"pk", "other"}: accessNone, {"pk2", "mine"}: accessNone,
	} {
		if got := c.can(d); got != want {
			t.Errorf("%s: access %d, want %d", d, got, want)
		}
	}
	if len(c.order) != 3 || c.order[2] != (device{"pk", "shared"}) {
		t.Errorf("order %v", c.order)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
