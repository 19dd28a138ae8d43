// Package kstatus checks, against a real API server, the health GitOps tools
// read from otafleet's objects: kstatus (Flux health checks, kubectl wait,
// cli-utils) and the Argo CD health check in config/argocd. The objects are
// the fixtures in testdata, every kind in every phase with the status the
// reconcilers compute (controllers' TestHealthFixtures keeps them true).
package kstatus

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/otafleet/otafleet/internal/testserver"
)

var cp *testserver.ControlPlane

func TestMain(m *testing.M) { testserver.RunWithControlPlane(m, &cp) }

// newNamespace creates a namespace for one test and deletes it afterwards.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "kstatus-"}}
	if err := cp.Client.Create(t.Context(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	t.Cleanup(func() { _ = cp.Client.Delete(context.Background(), ns) })
	return ns.Name
}
