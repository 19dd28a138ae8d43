package testserver

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// Binaries are the locations of the server binaries.
type Binaries struct {
	// KubeAssets is the directory holding kube-apiserver and etcd.
	KubeAssets string
	MinIO      string
	Mosquitto  string
}

var (
	binOnce sync.Once
	bins    Binaries
	binErr  error
)

// FindBinaries returns the server binaries. It honours KUBEBUILDER_ASSETS,
// MINIO_BIN and MOSQUITTO_BIN when all are set (as `make test` does), and
// otherwise runs hack/setup-test-env.sh once per process, which builds what
// is missing.
func FindBinaries() (Binaries, error) {
	binOnce.Do(func() { bins, binErr = findBinaries() })
	return bins, binErr
}

func findBinaries() (Binaries, error) {
	b := Binaries{
		KubeAssets: os.Getenv("KUBEBUILDER_ASSETS"),
		MinIO:      os.Getenv("MINIO_BIN"),
		Mosquitto:  os.Getenv("MOSQUITTO_BIN"),
	}
	if b.KubeAssets != "" && b.MinIO != "" && b.Mosquitto != "" {
		return b, nil
	}
	root, err := repoRoot()
	if err != nil {
		return b, err
	}
	cmd := exec.Command("bash", filepath.Join(root, "hack", "setup-test-env.sh"), "all")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return b, fmt.Errorf("hack/setup-test-env.sh: %w", err)
	}
	vars := parseExports(out)
	b.KubeAssets, b.MinIO, b.Mosquitto = vars["KUBEBUILDER_ASSETS"], vars["MINIO_BIN"], vars["MOSQUITTO_BIN"]
	if b.KubeAssets == "" || b.MinIO == "" || b.Mosquitto == "" {
		return b, fmt.Errorf("hack/setup-test-env.sh printed incomplete paths: %q", out)
	}
	// envtest reads the variable itself.
	os.Setenv("KUBEBUILDER_ASSETS", b.KubeAssets)
	return b, nil
}

func parseExports(out []byte) map[string]string {
	vars := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export ")
		if k, v, ok := strings.Cut(line, "="); ok {
			vars[k] = v
		}
	}
	return vars
}

// repoRoot walks up from the working directory (a package directory under
// `go test`) to the directory holding go.mod of the main module.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			bytes.Contains(data, []byte("module github.com/otafleet/otafleet\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("repository root not found above the working directory")
		}
		dir = parent
	}
}
