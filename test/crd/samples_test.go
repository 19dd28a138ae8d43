package crd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// readSamples returns every object in config/samples.
func readSamples(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	files, err := filepath.Glob("../../config/samples/ota_*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples found: %v", err)
	}
	var objs []*unstructured.Unstructured
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if len(u.Object) > 0 {
				objs = append(objs, u)
			}
		}
	}
	return objs
}

func TestSamplesAreAccepted(t *testing.T) {
	ns := newNamespace(t)
	samples := readSamples(t)
	kinds := map[string]bool{}
	for _, u := range samples {
		u.SetNamespace(ns)
		if err := cp.Client.Create(context.Background(), u); err != nil {
			t.Errorf("sample %s %s refused: %v", u.GetKind(), u.GetName(), err)
		}
		kinds[u.GetKind()] = true
	}
	for _, k := range []string{"Product", "Firmware", "VerificationRun", "UpgradeBatch"} {
		if !kinds[k] {
			t.Errorf("config/samples has no %s", k)
		}
	}
}

func TestDefaultsApplied(t *testing.T) {
	ns := newNamespace(t)
	ub := &otav1.UpgradeBatch{}
	ub.Name, ub.Namespace = "minimal", ns
	ub.Spec.Firmware = "fw"
	if err := cp.Client.Create(context.Background(), ub); err != nil {
		t.Fatalf("minimal batch refused: %v", err)
	}
	got := &otav1.UpgradeBatch{}
	if err := cp.Client.Get(context.Background(), client.ObjectKeyFromObject(ub), got); err != nil {
		t.Fatal(err)
	}
	if got.Spec.RatePerMinute != 10000 || got.Spec.Type != otav1.BatchStatic ||
		got.Spec.Scope.Type != otav1.ScopeAll || got.Spec.Timeout.Duration.String() != "1h0m0s" {
		t.Errorf("defaults not applied: %+v", got.Spec)
	}

	fw := &otav1.Firmware{}
	fw.Name, fw.Namespace = "minimal", ns
	fw.Spec.Product, fw.Spec.Version = "p", "1.0.0"
	fw.Spec.Source.Upload = &otav1.UploadSource{}
	if err := cp.Client.Create(context.Background(), fw); err != nil {
		t.Fatalf("minimal firmware refused: %v", err)
	}
	if fw.Spec.Module != otav1.DefaultModule || fw.Spec.SignMethod != otav1.SignMethodMD5 || !fw.NeedsVerification() {
		t.Errorf("firmware defaults not applied: %+v", fw.Spec)
	}
}

// wantRefused checks that err is a refusal whose message contains want.
func wantRefused(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Errorf("accepted; want refusal with %q", want)
		return
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("refused with %q; want a message containing %q", err, want)
	}
}
