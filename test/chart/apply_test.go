package chart

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// secrets makes the chart render its three Secrets too.
var secrets = []string{
	"--set", "mqtt.username=otafleet", "--set", "mqtt.password=mqtt-password",
	"--set", "storage.accessKey=access", "--set", "storage.secretKey=secret-key",
	"--set", "download.signingKey=" + strings.Repeat("k", 48),
}

// dryRunApply server-side applies obj without persisting it; the API
// server validates it as for a real install (apply is always strict about
// unknown fields).
func dryRunApply(obj *unstructured.Unstructured) error {
	return cp.Client.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(obj),
		client.FieldOwner("otafleet-chart-test"), client.ForceOwnership, client.DryRunAll)
}

// TestChartAppliesToAPIServer renders the chart with its defaults and with
// every optional part on, and applies each object, CRDs included.
func TestChartAppliesToAPIServer(t *testing.T) {
	cases := map[string][]string{
		"defaults": nil,
		"secrets and options": append([]string{
			"--set", "download.egressBytesPerSecond=50000000", "--set", "download.cdnCacheControl=true",
			"--set", "download.service.type=LoadBalancer", "--set", "download.extraArgs={--shutdown-timeout=40s}",
			"--set", "imagePullSecrets[0].name=registry", "--set", "extraArgs={--max-push-per-second=100}",
		}, secrets...),
	}
	for name, values := range cases {
		t.Run(name, func(t *testing.T) {
			ns := newNamespace(t)
			objs := render(t, ns, append(values, "--include-crds")...)
			kinds := map[string]int{}
			for _, u := range objs {
				if err := dryRunApply(u); err != nil {
					t.Errorf("%s %s refused: %v", u.GetKind(), u.GetName(), err)
				}
				kinds[u.GetKind()]++
			}
			want := map[string]int{"CustomResourceDefinition": 7, "Deployment": 2, "PodDisruptionBudget": 2}
			if values != nil {
				want["Secret"] = 3
			}
			for kind, n := range want {
				if kinds[kind] != n {
					t.Errorf("rendered %d %s, want %d", kinds[kind], kind, n)
				}
			}
		})
	}
}

// TestBadValuesRefused: values the API server would refuse are refused by
// the dry run, so a passing TestChartAppliesToAPIServer means something.
func TestBadValuesRefused(t *testing.T) {
	ns := newNamespace(t)
	cases := []struct{ set, kind, suffix, want string }{
		{"download.replicaCount=-1", "Deployment", "-download", "spec.replicas"},
		{"download.service.type=Public", "Service", "-download", `spec.type: Unsupported value: "Public"`},
		{"download.podDisruptionBudget.minAvailable=-1", "PodDisruptionBudget", "-download", "spec.minAvailable"},
	}
	for _, tc := range cases {
		t.Run(tc.set, func(t *testing.T) {
			obj := find(t, render(t, ns, "--set", tc.set), tc.kind, tc.suffix)
			err := dryRunApply(obj)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("applying %s with %s: got %v, want an error with %q", tc.kind, tc.set, err, tc.want)
			}
		})
	}

	t.Run("unknown field", func(t *testing.T) {
		obj := find(t, render(t, ns), "Deployment", "-download")
		if err := unstructured.SetNestedField(obj.Object, int64(1), "spec", "template", "spec", "replicas"); err != nil {
			t.Fatal(err)
		}
		if err := dryRunApply(obj); err == nil || !strings.Contains(err.Error(), "replicas") {
			t.Errorf("a pod spec with replicas: got %v, want it refused", err)
		}
	})
}

// TestShortSigningKeyFailsToRender: the download service refuses a signing
// key under 32 bytes at start; the chart says so at install time instead.
func TestShortSigningKeyFailsToRender(t *testing.T) {
	_, err := helmTemplate(t, "otafleet-system", "--set", "download.signingKey=too-short")
	if err == nil || !strings.Contains(err.Error(), "download.signingKey must be at least 32 bytes") {
		t.Errorf("got %v, want the chart to refuse the key", err)
	}
}
