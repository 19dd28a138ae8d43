// Package crd proves, against a real API server, that the CRDs accept every
// sample and refuse bad manifests with a clear message.
package crd

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/otafleet/otafleet/internal/testserver"
)

var cp *testserver.ControlPlane

func TestMain(m *testing.M) { testserver.RunWithControlPlane(m, &cp) }

var nsCounter atomic.Int64

// newNamespace creates a namespace for one test and deletes it afterwards.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: fmt.Sprintf("crd-%d-%d", os.Getpid(), nsCounter.Add(1)),
	}}
	if err := cp.Client.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	t.Cleanup(func() { _ = cp.Client.Delete(context.Background(), ns) })
	return ns.Name
}

var _ client.Client // the suite's client is cp.Client
