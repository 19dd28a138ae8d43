package signature

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// opensslPath is where the documented recipe's openssl is expected; the
// test fails without it rather than passing silently.
const opensslPath = "/usr/bin/openssl"

func openssl(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(opensslPath, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl %v: %v\n%s", args, err, out)
	}
}

// TestOpenSSLRecipe runs the exact commands of docs/spec/v1alpha1/firmwares.md
// ("Signing an image") and checks that the operator accepts the result, and
// that a signature over the image bytes themselves is refused.
func TestOpenSSLRecipe(t *testing.T) {
	if _, err := os.Stat(opensslPath); err != nil {
		t.Fatalf("this test runs the documented openssl recipe and needs %s (Debian package openssl): %v", opensslPath, err)
	}
	dir := t.TempDir()
	img := make([]byte, 1<<20)
	for i := range img {
		img[i] = byte(i * 7)
	}
	if err := os.WriteFile(filepath.Join(dir, "img"), img, 0o600); err != nil {
		t.Fatal(err)
	}
	openssl(t, dir, "genpkey", "-algorithm", "ed25519", "-out", "key.pem")
	openssl(t, dir, "pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem")
	// The recipe: sign the raw 32-byte SHA-256 of the image.
	openssl(t, dir, "dgst", "-sha256", "-binary", "-out", "img.sha256", "img")
	openssl(t, dir, "pkeyutl", "-sign", "-rawin", "-inkey", "key.pem", "-in", "img.sha256", "-out", "img.sig")
	// What the docs warn against: a signature of the image bytes.
	openssl(t, dir, "pkeyutl", "-sign", "-rawin", "-inkey", "key.pem", "-in", "img", "-out", "img.pure.sig")

	pemData, err := os.ReadFile(filepath.Join(dir, "pub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(pemData)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(img)
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(b)
	}
	if err := VerifyDigest(pub, hex.EncodeToString(sum[:]), read("img.sig")); err != nil {
		t.Errorf("signature made by the documented recipe refused: %v", err)
	}
	if err := VerifyDigest(pub, hex.EncodeToString(sum[:]), read("img.pure.sig")); !errors.Is(err, ErrInvalid) {
		t.Errorf("signature of the image bytes: %v, want ErrInvalid", err)
	}
}
