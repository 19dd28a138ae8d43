package controllers

import (
	"context"
	"errors"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	otascheme "github.com/otafleet/otafleet/internal/scheme"
	"github.com/otafleet/otafleet/internal/storage"
)

// brokenStore fails every call with err, as an unreachable or misconfigured
// object store does.
type brokenStore struct{ err error }

func (b brokenStore) EnsureBucket(context.Context, string) error { return b.err }
func (b brokenStore) Put(context.Context, string, string, io.Reader, int64, string) (storage.ObjectInfo, error) {
	return storage.ObjectInfo{}, b.err
}
func (b brokenStore) Stat(context.Context, string, string) (storage.ObjectInfo, error) {
	return storage.ObjectInfo{}, b.err
}
func (b brokenStore) Get(context.Context, string, string) (io.ReadCloser, storage.ObjectInfo, error) {
	return nil, storage.ObjectInfo{}, b.err
}
func (b brokenStore) Copy(context.Context, string, string, string, string) (storage.ObjectInfo, error) {
	return storage.ObjectInfo{}, b.err
}
func (b brokenStore) PresignPut(context.Context, string, string, time.Duration) (*url.URL, error) {
	return nil, b.err
}
func (b brokenStore) Delete(context.Context, string, string) error { return b.err }
func (b brokenStore) Sanitize(err error) string                    { return storage.Sanitize(err, "s3cr3t") }
func (b brokenStore) DevicePortWarning() string                    { return "" }

// TestFirmwareStorageErrorIsSanitized checks that a storage failure reaches
// the conditions without credentials or signed URLs, and is retried.
func TestFirmwareStorageErrorIsSanitized(t *testing.T) {
	fw := &otav1.Firmware{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "fw", Generation: 1},
		Spec: otav1.FirmwareSpec{Product: "prod", Module: "default", Version: "1",
			Source: otav1.FirmwareSource{Upload: &otav1.UploadSource{}}},
	}
	prod := &otav1.Product{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "prod"},
		Spec: otav1.ProductSpec{ProductKey: "pk"}}
	c := fake.NewClientBuilder().WithScheme(otascheme.New()).WithObjects(fw, prod).
		WithStatusSubresource(&otav1.Firmware{}).Build()
	leak := &url.Error{Op: "Head", URL: "http://minio:9000/b/k?X-Amz-Credential=AKIA&X-Amz-Signature=abc",
		Err: errors.New("dial tcp: connection refused (key s3cr3t)")}
	r := &FirmwareReconciler{Client: c, APIReader: c, Store: brokenStore{err: leak}, Bucket: "b"}

	_, err := r.Reconcile(t.Context(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "fw"}})
	if err == nil {
		t.Fatal("a storage failure was not returned for a retry")
	}
	got := &otav1.Firmware{}
	if err := c.Get(t.Context(), types.NamespacedName{Namespace: "ns", Name: "fw"}, got); err != nil {
		t.Fatal(err)
	}
	ready := apimeta.FindStatusCondition(got.Status.Conditions, otav1.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != otav1.ReasonStorageError {
		t.Fatalf("Ready %+v, want False/%s", ready, otav1.ReasonStorageError)
	}
	for _, secret := range []string{"s3cr3t", "AKIA", "abc"} {
		if strings.Contains(ready.Message, secret) {
			t.Errorf("condition message %q leaks %q", ready.Message, secret)
		}
	}
	if !apimeta.IsStatusConditionTrue(got.Status.Conditions, otav1.ConditionReconciling) {
		t.Error("a storage failure should leave Reconciling True: it heals by itself")
	}
	if len(got.Finalizers) != 1 || got.Finalizers[0] != FirmwareFinalizer {
		t.Errorf("finalizers %v, want [%s]", got.Finalizers, FirmwareFinalizer)
	}
}

func TestOlderProduct(t *testing.T) {
	t0 := metav1.NewTime(time.Unix(1000, 0))
	t1 := metav1.NewTime(time.Unix(1001, 0))
	p := func(ns, name string, ts metav1.Time) *otav1.Product {
		return &otav1.Product{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: ts}}
	}
	tests := []struct {
		name string
		a, b *otav1.Product
		want bool
	}{
		{"earlier wins", p("z", "z", t0), p("a", "a", t1), true},
		{"later loses", p("a", "a", t1), p("z", "z", t0), false},
		{"same second: namespace", p("a", "z", t0), p("b", "a", t0), true},
		{"same second and namespace: name", p("a", "b", t0), p("a", "a", t0), false},
	}
	for _, tt := range tests {
		if got := olderProduct(tt.a, tt.b); got != tt.want {
			t.Errorf("%s: olderProduct = %v, want %v", tt.name, got, tt.want)
		}
	}
}
