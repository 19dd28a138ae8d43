package appapi

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// selfSigned returns a certificate and key for 127.0.0.1, in PEM.
func selfSigned(t testing.TB) (certPEM, keyPEM []byte) {
	t.Helper()
	k := testKeys()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "appapi-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der := must(x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.ec256.Public(), k.ec256))
	return pemBlock("CERTIFICATE", der), pemBlock("PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(k.ec256)))
}

func TestKeysFromSecretData(t *testing.T) {
	k := testKeys()
	rsaPKIX := pemBlock("PUBLIC KEY", must(x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)))
	rsaPKCS1 := pemBlock("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey))
	ec := pemBlock("PUBLIC KEY", must(x509.MarshalPKIXPublicKey(&k.ec384.PublicKey)))
	ed := pemBlock("PUBLIC KEY", must(x509.MarshalPKIXPublicKey(k.ed.Public())))
	cert, _ := selfSigned(t)
	small := must(rsa.GenerateKey(rand.Reader, 1024))
	smallPEM := pemBlock("PUBLIC KEY", must(x509.MarshalPKIXPublicKey(&small.PublicKey)))
	private := pemBlock("PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(k.ed)))

	good := []struct {
		name string
		data map[string][]byte
		keys int
	}{
		{"hmac", map[string][]byte{"hmac-secret": testSecret}, 0},
		{"rsa pkix", map[string][]byte{"public-key.pem": rsaPKIX}, 1},
		{"rsa pkcs1", map[string][]byte{"public-key.pem": rsaPKCS1}, 1},
		{"ecdsa", map[string][]byte{"public-key.pem": ec}, 1},
		{"ed25519", map[string][]byte{"public-key.pem": ed}, 1},
		{"certificate", map[string][]byte{"public-key.pem": cert}, 1},
		{"rotation: several keys", map[string][]byte{"public-key.pem": append(append(rsaPKIX, ec...), ed...)}, 3},
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			keys, err := KeysFromSecretData(tc.data)
			if err != nil {
				t.Fatal(err)
			}
			if len(keys.PublicKeys) != tc.keys {
				t.Fatalf("%d public keys, want %d", len(keys.PublicKeys), tc.keys)
			}
			if tc.name == "ed25519" {
				if _, ok := keys.PublicKeys[0].(ed25519.PublicKey); !ok {
					t.Fatalf("key type %T", keys.PublicKeys[0])
				}
			}
		})
	}
	bad := []struct {
		name, want string
		data       map[string][]byte
	}{
		{"empty", "neither", map[string][]byte{}},
		{"both", "both", map[string][]byte{"hmac-secret": testSecret, "public-key.pem": rsaPKIX}},
		{"short secret", "at least 32", map[string][]byte{"hmac-secret": []byte("short")}},
		{"no PEM", "no PEM", map[string][]byte{"public-key.pem": []byte("not pem")}},
		{"private key", "not a public key", map[string][]byte{"public-key.pem": private}},
		{"short RSA", "too short", map[string][]byte{"public-key.pem": smallPEM}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := KeysFromSecretData(tc.data); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestNewValidatesConfig(t *testing.T) {
	cert, key := selfSigned(t)
	for name, mutate := range map[string]func(*Config){
		"no keys":       func(c *Config) { c.Keys = Keys{} },
		"no issuer":     func(c *Config) { c.Issuer = "" },
		"no audience":   func(c *Config) { c.Audience = "" },
		"cert, no key":  func(c *Config) { c.TLSCertPEM = cert },
		"bad TLS pair":  func(c *Config) { c.TLSCertPEM, c.TLSKeyPEM = cert, cert },
		"negative body": func(c *Config) { c.MaxBodyBytes = -1 },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig()
			mutate(&cfg)
			if _, err := New(cfg, newFake()); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	cfg := testConfig()
	cfg.TLSCertPEM, cfg.TLSKeyPEM = cert, key
	if _, err := New(cfg, newFake()); err != nil {
		t.Fatal(err)
	}
}
