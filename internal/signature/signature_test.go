package signature

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"testing"
)

func TestVerifyDigest(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	otherPub, _, _ := ed25519.GenerateKey(nil)
	sum := sha256.Sum256([]byte("image"))
	digest := hex.EncodeToString(sum[:])
	other := sha256.Sum256([]byte("tampered image"))
	sig, err := Sign(priv, digest)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		pub     ed25519.PublicKey
		digest  string
		sig     string
		wantErr error // nil: valid; ErrInvalid; or any error when errAny
		errAny  bool
	}{
		{name: "valid", pub: pub, digest: digest, sig: sig},
		{name: "other image", pub: pub, digest: hex.EncodeToString(other[:]), sig: sig, wantErr: ErrInvalid},
		{name: "other key", pub: otherPub, digest: digest, sig: sig, wantErr: ErrInvalid},
		{name: "not base64", pub: pub, digest: digest, sig: "!!!", errAny: true},
		{name: "short signature", pub: pub, digest: digest, sig: base64.StdEncoding.EncodeToString([]byte("short")), errAny: true},
		{name: "bad digest", pub: pub, digest: "xyz", sig: sig, errAny: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyDigest(tt.pub, tt.digest, tt.sig)
			switch {
			case tt.errAny && err == nil:
				t.Error("accepted")
			case !tt.errAny && !errors.Is(err, tt.wantErr) && !(err == nil && tt.wantErr == nil):
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestParsePublicKeyFormats(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	formats := map[string][]byte{
		"pem":        pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
		"base64":     []byte(base64.StdEncoding.EncodeToString(pub) + "\n"),
		"raw base64": []byte(base64.RawURLEncoding.EncodeToString(pub)),
		"raw bytes":  []byte(pub),
	}
	for name, data := range formats {
		got, err := ParsePublicKey(data)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !got.Equal(pub) {
			t.Errorf("%s: parsed another key", name)
		}
	}
	for name, data := range map[string][]byte{
		"empty":       nil,
		"short":       []byte(base64.StdEncoding.EncodeToString([]byte("short"))),
		"private pem": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		"garbage":     []byte("not a key at all"),
	} {
		if _, err := ParsePublicKey(data); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
