package plugin

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/lab"
)

func TestFirmwareName(t *testing.T) {
	for _, tc := range []struct{ p, m, v, want string }{
		{"smart-plug", "wifi", "1.1.0", "smart-plug-wifi-1.1.0"},
		{"smart-plug", "default", "2.0.0", "smart-plug-2.0.0"},
		{"plug", "MCU", "app-1.0.0_RC1", "plug-mcu-app-1.0.0-rc1"},
	} {
		if got := firmwareName(tc.p, tc.m, tc.v); got != tc.want {
			t.Errorf("firmwareName(%q,%q,%q) = %q, want %q", tc.p, tc.m, tc.v, got, tc.want)
		}
	}
}

// TestFirmwarePushEndToEnd pushes a file through the real Firmware
// controller and MinIO: the pre-signed URL, the streamed PUT and the digests
// the operator computes are all real.
func TestFirmwarePushEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole lab")
	}
	ctx := testCtx(t)
	l, err := lab.Start(ctx, lab.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "kubeconfig")
	if err := l.ControlPlane.WriteKubeconfig(cfg); err != nil {
		t.Fatal(err)
	}
	c := l.Client()
	const ns = "push"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &otav1.Product{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plug"},
		Spec: otav1.ProductSpec{ProductKey: "pkPush", Modules: []string{"wifi"}}}); err != nil {
		t.Fatal(err)
	}

	image := make([]byte, 3<<20+17) // not a multiple of any buffer size
	_, _ = rand.Read(image)
	file := filepath.Join(dir, "wifi-1.1.0.bin")
	if err := os.WriteFile(file, image, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(image)
	out, errOut, err := kubectlOTA(ctx, cfg, ns, "firmware", "push", file,
		"--product", "plug", "--module", "wifi", "--version", "1.1.0", "--sign-method", "Sha256", "--timeout", "90s")
	if err != nil {
		t.Fatalf("push: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	if !strings.Contains(out, hex.EncodeToString(sum[:])) || !strings.Contains(errOut, "100%") {
		t.Fatalf("push output lacks the digest or the finished progress line:\n%s\n%s", out, errOut)
	}
	fw := &otav1.Firmware{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "plug-wifi-1.1.0"}, fw); err != nil {
		t.Fatal(err)
	}
	a := fw.Status.Artifact
	if !apimeta.IsStatusConditionTrue(fw.Status.Conditions, otav1.ConditionReady) || a == nil ||
		a.SHA256 != hex.EncodeToString(sum[:]) || a.Size != int64(len(image)) || fw.Spec.SignMethod != otav1.SignMethodSHA256 {
		t.Fatalf("firmware status %+v", fw.Status)
	}

	// Pushing again is idempotent; pushing another file under the same name
	// is refused rather than silently keeping the old image.
	if _, _, err := kubectlOTA(ctx, cfg, ns, "firmware", "push", file,
		"--product", "plug", "--module", "wifi", "--version", "1.1.0", "--sign-method", "Sha256", "--timeout", "30s"); err != nil {
		t.Fatalf("re-push of the same file: %v", err)
	}
	other := filepath.Join(dir, "other.bin")
	if err := os.WriteFile(other, []byte("another image"), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, _, err := kubectlOTA(ctx, cfg, ns, "firmware", "push", other,
		"--product", "plug", "--module", "wifi", "--version", "1.1.0", "--timeout", "30s"); err == nil ||
		!strings.Contains(err.Error(), "already exists") {
		t.Fatalf("a different file under an existing name: %v", err)
	}
	if time.Since(start) > 20*time.Second {
		t.Fatal("refusing a conflicting push must not wait for a timeout")
	}
}
