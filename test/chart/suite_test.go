// Package chart proves that the Helm chart in charts/otafleet installs what
// config/default does: it renders the chart with the helm binary that
// `make test-chart` builds (HELM_BIN), compares the result with config/,
// and applies every rendered object, dry run, to a real API server.
package chart

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/otafleet/otafleet/internal/testserver"
)

const chartDir = "../../charts/otafleet"

var (
	cp      *testserver.ControlPlane
	helmBin string
)

func TestMain(m *testing.M) {
	if helmBin = os.Getenv("HELM_BIN"); helmBin == "" {
		// Only a plain `go test` gets here: the Makefile always sets it.
		fmt.Fprintln(os.Stderr, "test/chart: HELM_BIN is unset, so the chart tests skip; "+
			"`make test-chart` builds the pinned helm and sets it")
		os.Exit(m.Run())
	}
	testserver.RunWithControlPlane(m, &cp)
}

// helmTemplate renders the chart as release "otafleet" in namespace ns,
// with extra helm flags (--set ...), and returns helm's output.
func helmTemplate(t *testing.T, ns string, extra ...string) ([]byte, error) {
	t.Helper()
	needHelm(t)
	args := append([]string{"template", "otafleet", chartDir, "--namespace", ns}, extra...)
	cmd := exec.Command(helmBin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	// helm keeps its caches and configuration away from the user's.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"), "HELM_DATA_HOME="+filepath.Join(home, "data"))
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// needHelm skips a test when HELM_BIN is unset (then no API server runs
// either); `make test-chart` always sets it.
func needHelm(t *testing.T) {
	t.Helper()
	if helmBin == "" {
		t.Skip("HELM_BIN is unset: run `make test-chart`")
	}
}

// render is helmTemplate for values that must render.
func render(t *testing.T, ns string, extra ...string) []*unstructured.Unstructured {
	t.Helper()
	out, err := helmTemplate(t, ns, extra...)
	if err != nil {
		t.Fatal(err)
	}
	return decodeAll(t, "helm template", out)
}

// decodeAll splits a multi-document YAML stream into objects, dropping
// empty documents.
func decodeAll(t *testing.T, what string, data []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			return objs
		} else if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

// find returns the only object of kind whose name ends with suffix.
func find(t *testing.T, objs []*unstructured.Unstructured, kind, suffix string) *unstructured.Unstructured {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, u := range objs {
		if u.GetKind() == kind && strings.HasSuffix(u.GetName(), suffix) {
			found = append(found, u)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one %s named *%s, found %d", kind, suffix, len(found))
	}
	return found[0]
}

var nsCounter atomic.Int64

// newNamespace creates a namespace for one test and deletes it afterwards.
func newNamespace(t *testing.T) string {
	t.Helper()
	needHelm(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: fmt.Sprintf("chart-%d-%d", os.Getpid(), nsCounter.Add(1)),
	}}
	if err := cp.Client.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	t.Cleanup(func() { _ = cp.Client.Delete(context.Background(), ns) })
	return ns.Name
}
