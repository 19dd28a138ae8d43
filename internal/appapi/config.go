package appapi

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Keys in a Secret that KeysFromSecretData reads.
const (
	SecretKeyHMAC      = "hmac-secret"
	SecretKeyPublicPEM = "public-key.pem"
)

// MaxConfirmDevices is how many devices one confirm may name (the guide's
// limit).
const MaxConfirmDevices = 20

// minHMACSecret is the shortest HMAC secret accepted: RFC 7518 asks for a
// key at least as long as the hash output, and HS256 is the weakest.
const minHMACSecret = 32

// minRSABits refuses RSA keys too short to be trusted today.
const minRSABits = 2048

// Keys verify the app backend's tokens: either an HMAC secret, or public
// keys (several allow rotation; a token is accepted when one of them
// verifies it).
type Keys struct {
	// HMACSecret verifies HS256, HS384 and HS512 tokens.
	HMACSecret []byte
	// PublicKeys are *rsa.PublicKey (RS*, PS*), *ecdsa.PublicKey (ES256,
	// ES384 or ES512 by curve) or ed25519.PublicKey (EdDSA).
	PublicKeys []crypto.PublicKey
}

// KeysFromSecretData reads the token keys from a Secret's data: the key
// "hmac-secret" (raw bytes, at least 32), or "public-key.pem" (PEM blocks
// "PUBLIC KEY", "RSA PUBLIC KEY" or "CERTIFICATE", one or more). Exactly one
// of the two must be present, so that a forgotten HMAC secret next to
// public keys cannot silently widen what is accepted.
func KeysFromSecretData(data map[string][]byte) (Keys, error) {
	secret, hasSecret := data[SecretKeyHMAC]
	pemData, hasPEM := data[SecretKeyPublicPEM]
	switch {
	case hasSecret && hasPEM:
		return Keys{}, fmt.Errorf("the Secret holds both %s and %s; keep one", SecretKeyHMAC, SecretKeyPublicPEM)
	case hasSecret:
		k := Keys{HMACSecret: secret}
		return k, k.validate()
	case hasPEM:
		pubs, err := ParsePublicKeys(pemData)
		if err != nil {
			return Keys{}, err
		}
		k := Keys{PublicKeys: pubs}
		return k, k.validate()
	}
	return Keys{}, fmt.Errorf("the Secret holds neither %s nor %s", SecretKeyHMAC, SecretKeyPublicPEM)
}

// ParsePublicKeys reads every public key of PEM data. Private keys are
// refused: the operator only verifies, and a private key in its Secret is
// a leak waiting to happen.
func ParsePublicKeys(data []byte) ([]crypto.PublicKey, error) {
	var out []crypto.PublicKey
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		var pub any
		var err error
		switch b.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(b.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(b.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(b.Bytes); err == nil {
				pub = cert.PublicKey
			}
		default:
			return nil, fmt.Errorf("PEM block %q is not a public key or certificate", b.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("parsing PEM block %q: %w", b.Type, err)
		}
		out = append(out, pub)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM public key found")
	}
	return out, nil
}

func (k Keys) validate() error {
	if len(k.HMACSecret) == 0 && len(k.PublicKeys) == 0 {
		return errors.New("no token keys: set an HMAC secret or public keys")
	}
	if len(k.HMACSecret) > 0 && len(k.PublicKeys) > 0 {
		return errors.New("token keys: an HMAC secret and public keys are exclusive")
	}
	if n := len(k.HMACSecret); n > 0 && n < minHMACSecret {
		return fmt.Errorf("the HMAC secret has %d bytes; at least %d are required", n, minHMACSecret)
	}
	for _, p := range k.PublicKeys {
		switch p := p.(type) {
		case *rsa.PublicKey:
			if p.N.BitLen() < minRSABits {
				return fmt.Errorf("an RSA key of %d bits is too short; at least %d are required", p.N.BitLen(), minRSABits)
			}
		case *ecdsa.PublicKey:
			if _, ok := ecdsaMethods[p.Curve.Params().BitSize]; !ok {
				return fmt.Errorf("ECDSA curve %s is not one of P-256, P-384, P-521", p.Curve.Params().Name)
			}
		case ed25519.PublicKey:
		default:
			return fmt.Errorf("public key type %T is not supported", p)
		}
	}
	return nil
}

// Config configures the server. Keys, Issuer and Audience are required.
type Config struct {
	// Addr is the address to listen on, e.g. ":8443".
	Addr string
	// Keys verify the bearer tokens.
	Keys Keys
	// Issuer is the required "iss" of tokens.
	Issuer string
	// Audience must be one of the tokens' "aud".
	Audience string
	// Leeway tolerates clock skew in exp, nbf and iat. Default 30s.
	Leeway time.Duration

	// TLSCertPEM and TLSKeyPEM, when both set, serve HTTPS.
	TLSCertPEM, TLSKeyPEM []byte

	// RatePerSecond and Burst limit each user's requests. Defaults 5/s
	// with a burst of 20: an app screen makes a few calls at once.
	RatePerSecond float64
	Burst         int
	// MaxBodyBytes limits request bodies. Default 64 KiB.
	MaxBodyBytes int64
	// MaxTokenDevices bounds the devices a token may name (both lists), so
	// that one request's work is bounded. Default 1000.
	MaxTokenDevices int

	// StreamBuffer is the number of progress events buffered per stream
	// before it is considered too slow and ended. Default 256.
	StreamBuffer int
	// MaxStreamsPerUser bounds concurrent progress streams of one user.
	// Default 4.
	MaxStreamsPerUser int
	// Heartbeat is the interval of SSE comments that keep idle streams
	// open through proxies. Default 25s.
	Heartbeat time.Duration
	// WriteTimeout bounds every write to a client, so that a client that
	// stopped reading cannot hold a handler. Default 10s.
	WriteTimeout time.Duration

	// Registerer receives the metrics; nil is controller-runtime's
	// registry.
	Registerer prometheus.Registerer
	// Now is the clock for tokens and limits; nil is time.Now.
	Now func() time.Time
}

func (c *Config) defaults() {
	if c.Leeway == 0 {
		c.Leeway = 30 * time.Second
	}
	if c.RatePerSecond == 0 {
		c.RatePerSecond = 5
	}
	if c.Burst == 0 {
		c.Burst = 20
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 64 << 10
	}
	if c.MaxTokenDevices == 0 {
		c.MaxTokenDevices = 1000
	}
	if c.StreamBuffer == 0 {
		c.StreamBuffer = 256
	}
	if c.MaxStreamsPerUser == 0 {
		c.MaxStreamsPerUser = 4
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 25 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

func (c *Config) validate() error {
	if err := c.Keys.validate(); err != nil {
		return err
	}
	if c.Issuer == "" || c.Audience == "" {
		return errors.New("the token issuer and audience are required")
	}
	if (len(c.TLSCertPEM) == 0) != (len(c.TLSKeyPEM) == 0) {
		return errors.New("TLS needs both a certificate and a key")
	}
	if c.RatePerSecond < 0 || c.Burst < 1 || c.MaxBodyBytes < 1 || c.MaxTokenDevices < 1 ||
		c.StreamBuffer < 1 || c.MaxStreamsPerUser < 1 || c.Heartbeat < 0 || c.Leeway < 0 {
		return errors.New("limits must be positive")
	}
	return nil
}
