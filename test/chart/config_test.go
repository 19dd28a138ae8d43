package chart

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// configNamespace is where config/default installs; rendering the chart
// there makes the namespaced flags of both the same.
const configNamespace = "otafleet-system"

// readKustomization returns the objects of the kustomization in dir,
// following its resources (files and directories) without kustomize: it
// leaves names unprefixed, and names are not compared.
func readKustomization(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	var k struct {
		Resources []string `json:"resources"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	var objs []*unstructured.Unstructured
	for _, r := range k.Resources {
		path := filepath.Join(dir, r)
		if fi, err := os.Stat(path); err != nil {
			t.Fatal(err)
		} else if fi.IsDir() {
			objs = append(objs, readKustomization(t, path)...)
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, decodeAll(t, path, data)...)
	}
	return objs
}

// TestChartCoversConfigDefault: every kind of object config/default
// installs, the chart renders as many times (a namespace aside, which
// `helm install --create-namespace` makes).
func TestChartCoversConfigDefault(t *testing.T) {
	chart := map[string]int{}
	for _, u := range render(t, configNamespace, "--include-crds") {
		chart[u.GetKind()]++
	}
	config := map[string]int{}
	for _, u := range readKustomization(t, "../../config/default") {
		config[u.GetKind()]++
	}
	delete(config, "Namespace")
	for kind, n := range config {
		if chart[kind] < n {
			t.Errorf("config/default has %d %s, the chart %d", n, kind, chart[kind])
		}
	}
}

// TestDeploymentsMatchConfig compares the chart's Deployments, rendered
// with the default values, with config/manager's and config/download's:
// the same pods, save names, the image and the flags the chart adds.
func TestDeploymentsMatchConfig(t *testing.T) {
	chart := render(t, configNamespace)
	config := readKustomization(t, "../../config/default")
	for _, pair := range []struct{ config, chart string }{
		{"controller-manager", "-manager"},
		{"download", "-download"},
	} {
		t.Run(pair.config, func(t *testing.T) {
			want := deployment(t, find(t, config, "Deployment", pair.config))
			got := deployment(t, find(t, chart, "Deployment", pair.chart))
			if *got.Spec.Replicas != *want.Spec.Replicas {
				t.Errorf("replicas %d, config/ has %d", *got.Spec.Replicas, *want.Spec.Replicas)
			}
			g, w := got.Spec.Template.Spec, want.Spec.Template.Spec
			same(t, "automountServiceAccountToken", g.AutomountServiceAccountToken, w.AutomountServiceAccountToken)
			same(t, "securityContext", g.SecurityContext, w.SecurityContext)
			same(t, "terminationGracePeriodSeconds", g.TerminationGracePeriodSeconds, w.TerminationGracePeriodSeconds)
			same(t, "volumes", g.Volumes, w.Volumes)
			if len(g.Containers) != 1 || len(w.Containers) != 1 {
				t.Fatalf("containers: chart %d, config/ %d; want one each", len(g.Containers), len(w.Containers))
			}
			gc, wc := g.Containers[0], w.Containers[0]
			same(t, "name", gc.Name, wc.Name)
			same(t, "command", gc.Command, wc.Command)
			same(t, "ports", gc.Ports, wc.Ports)
			same(t, "env", gc.Env, wc.Env)
			same(t, "volumeMounts", gc.VolumeMounts, wc.VolumeMounts)
			same(t, "securityContext", gc.SecurityContext, wc.SecurityContext)
			same(t, "livenessProbe", gc.LivenessProbe, wc.LivenessProbe)
			same(t, "readinessProbe", gc.ReadinessProbe, wc.ReadinessProbe)
			same(t, "resources", gc.Resources, wc.Resources)
			for _, arg := range wc.Args {
				if !slices.Contains(gc.Args, arg) {
					t.Errorf("config/ passes %s; the chart's args are %q", arg, gc.Args)
				}
			}
		})
	}
}

// TestServiceAndBudgetMatchConfig: the download Service listens where
// config/download's does, and the same number of pods stay up.
func TestServiceAndBudgetMatchConfig(t *testing.T) {
	chart := render(t, configNamespace)
	config := readKustomization(t, "../../config/download")
	for _, c := range []struct {
		kind  string
		field []string
	}{{"Service", []string{"spec", "ports"}}, {"PodDisruptionBudget", []string{"spec", "minAvailable"}}} {
		w, _, _ := unstructured.NestedFieldNoCopy(find(t, config, c.kind, "download").Object, c.field...)
		g, _, _ := unstructured.NestedFieldNoCopy(find(t, chart, c.kind, "-download").Object, c.field...)
		if w == nil || !reflect.DeepEqual(g, w) {
			t.Errorf("%s %s: chart %v, config/download %v", c.kind, strings.Join(c.field, "."), g, w)
		}
	}
	// The manager's budget: as many replicas stay up as config/manager's.
	w, _, _ := unstructured.NestedFieldNoCopy(find(t, readKustomization(t, "../../config/default"), "PodDisruptionBudget", "controller-manager").Object, "spec", "minAvailable")
	g, _, _ := unstructured.NestedFieldNoCopy(find(t, chart, "PodDisruptionBudget", "-manager").Object, "spec", "minAvailable")
	if w == nil || !reflect.DeepEqual(g, w) {
		t.Errorf("manager PodDisruptionBudget minAvailable: chart %v, config/manager %v", g, w)
	}
}

// TestRBACAndCRDsMatchConfig: the chart's CRDs are config/crd/bases' files
// and its roles have config/rbac's rules (hack/sync-chart.sh copies them).
func TestRBACAndCRDsMatchConfig(t *testing.T) {
	bases, err := filepath.Glob("../../config/crd/bases/*.yaml")
	if err != nil || len(bases) == 0 {
		t.Fatalf("no CRDs in config/crd/bases: %v", err)
	}
	crds, _ := filepath.Glob(chartDir + "/crds/*.yaml")
	if len(crds) != len(bases) {
		t.Errorf("the chart has %d CRD files, config/crd/bases %d", len(crds), len(bases))
	}
	for _, b := range bases {
		want, _ := os.ReadFile(b)
		got, err := os.ReadFile(filepath.Join(chartDir, "crds", filepath.Base(b)))
		if err != nil || string(got) != string(want) {
			t.Errorf("charts/otafleet/crds/%s differs from %s (run hack/sync-chart.sh): %v", filepath.Base(b), b, err)
		}
	}

	chart := render(t, configNamespace)
	config := readKustomization(t, "../../config/rbac")
	for _, r := range []struct{ kind, config, chart string }{
		{"ClusterRole", "manager-role", "-manager"},
		{"Role", "leader-election-role", "-leader-election"},
	} {
		w := find(t, config, r.kind, r.config).Object["rules"]
		g := find(t, chart, r.kind, r.chart).Object["rules"]
		if w == nil || !reflect.DeepEqual(g, w) {
			t.Errorf("%s rules differ from config/rbac's (run hack/sync-chart.sh):\nchart:  %v\nconfig: %v", r.kind, g, w)
		}
	}
}

// TestSecretsWiredTogether: the manager and the download service read the
// same signing and storage Secrets, whatever they are called.
func TestSecretsWiredTogether(t *testing.T) {
	objs := render(t, "team-a", "--set", "download.secret=url-signing", "--set", "storage.credentialsSecret=object-store",
		"--set", "download.url=https://dl.example.com", "--set", "download.signingKey="+strings.Repeat("s", 32))
	manager := deployment(t, find(t, objs, "Deployment", "-manager")).Spec.Template.Spec.Containers[0]
	for _, arg := range []string{"--download-url=https://dl.example.com", "--download-secret=team-a/url-signing",
		"--s3-credentials-secret=team-a/object-store"} {
		if !slices.Contains(manager.Args, arg) {
			t.Errorf("the manager's args %q lack %s", manager.Args, arg)
		}
	}
	pod := deployment(t, find(t, objs, "Deployment", "-download")).Spec.Template.Spec
	if len(pod.Volumes) != 1 || pod.Volumes[0].Secret == nil || pod.Volumes[0].Secret.SecretName != "url-signing" {
		t.Errorf("the download service's volumes %+v do not mount Secret url-signing", pod.Volumes)
	}
	for _, env := range pod.Containers[0].Env {
		if env.ValueFrom == nil || env.ValueFrom.SecretKeyRef == nil || env.ValueFrom.SecretKeyRef.Name != "object-store" {
			t.Errorf("the download service's %s is not from Secret object-store: %+v", env.Name, env.ValueFrom)
		}
	}
	secret := find(t, objs, "Secret", "url-signing")
	if key, _, _ := unstructured.NestedString(secret.Object, "stringData", "secret"); key != strings.Repeat("s", 32) {
		t.Errorf("Secret url-signing holds %q under key secret", key)
	}
}

func deployment(t *testing.T, u *unstructured.Unstructured) *appsv1.Deployment {
	t.Helper()
	d := &appsv1.Deployment{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, d); err != nil {
		t.Fatalf("Deployment %s: %v", u.GetName(), err)
	}
	if d.Spec.Replicas == nil {
		t.Fatalf("Deployment %s sets no replicas", u.GetName())
	}
	return d
}

// same reports a field of the chart's pod that differs from config/'s.
func same(t *testing.T, field string, got, want any) {
	t.Helper()
	if apiequality.Semantic.DeepEqual(got, want) {
		return
	}
	g, _ := yaml.Marshal(got)
	w, _ := yaml.Marshal(want)
	t.Errorf("%s differs from config/'s:\nchart:\n%s\nconfig/:\n%s", field, g, w)
}
