package crd

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

func validFirmware() *otav1.Firmware {
	fw := &otav1.Firmware{}
	fw.Spec = otav1.FirmwareSpec{
		Product: "plug", Module: "mcu", Version: "2.2.0",
		Source: otav1.FirmwareSource{Upload: &otav1.UploadSource{}},
	}
	return fw
}

func validBatch() *otav1.UpgradeBatch {
	ub := &otav1.UpgradeBatch{}
	ub.Spec = otav1.UpgradeBatchSpec{Firmware: "fw", RatePerMinute: 100}
	return ub
}

func validRun() *otav1.VerificationRun {
	vr := &otav1.VerificationRun{}
	vr.Spec = otav1.VerificationRunSpec{Firmware: "fw", Devices: []string{"d1", "d2", "d3"}}
	return vr
}

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

func TestBadManifestsRefused(t *testing.T) {
	ns := newNamespace(t)
	start := metav1.NewTime(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	before := metav1.NewTime(start.Add(-time.Hour))
	elevenDevices := []string{"d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9", "d10", "d11"}

	cases := []struct {
		name string
		obj  func() client.Object
		want string
	}{
		{"push rate below 10", func() client.Object { b := validBatch(); b.Spec.RatePerMinute = 5; return b }, "spec.ratePerMinute"},
		{"push rate above 10000", func() client.Object { b := validBatch(); b.Spec.RatePerMinute = 20000; return b }, "should be less than or equal to 10000"},
		{"gray percent zero", func() client.Object {
			b := validBatch()
			b.Spec.Scope = otav1.Scope{Type: otav1.ScopeGray}
			return b
		}, "grayPercent is required"},
		{"gray percent above 100", func() client.Object {
			b := validBatch()
			b.Spec.Scope = otav1.Scope{Type: otav1.ScopeGray, GrayPercent: 101}
			return b
		}, "spec.scope.grayPercent"},
		{"list scope without devices", func() client.Object {
			b := validBatch()
			b.Spec.Scope = otav1.Scope{Type: otav1.ScopeList}
			return b
		}, "a List scope needs exactly one of devices or devicesFrom"},
		{"devices with scope All", func() client.Object {
			b := validBatch()
			b.Spec.Scope = otav1.Scope{Type: otav1.ScopeAll, Devices: []string{"d1"}}
			return b
		}, "only a List scope may have them"},
		{"retry interval not shorter than timeout", func() client.Object {
			b := validBatch()
			b.Spec.Timeout = dur(30 * time.Minute)
			b.Spec.Retry = &otav1.RetryPolicy{Count: 1, Interval: dur(time.Hour)}
			return b
		}, "retry.interval must be shorter than timeout"},
		{"timeout above 24h", func() client.Object { b := validBatch(); b.Spec.Timeout = dur(48 * time.Hour); return b }, "timeout must be between 1m and 24h"},
		{"retry count above 5", func() client.Object {
			b := validBatch()
			b.Spec.Retry = &otav1.RetryPolicy{Count: 6, Interval: dur(time.Minute)}
			return b
		}, "spec.retry.count"},
		{"waves not increasing", func() client.Object {
			b := validBatch()
			b.Spec.Waves = []otav1.Wave{{Percent: 50}, {Percent: 10}}
			return b
		}, "wave percentages must increase"},
		{"schedule end before start", func() client.Object {
			b := validBatch()
			b.Spec.Schedule = &otav1.Schedule{Start: &start, End: &before}
			return b
		}, "schedule.end must be after schedule.start"},
		{"schedule end equal to start", func() client.Object {
			b := validBatch()
			b.Spec.Schedule = &otav1.Schedule{Start: &start, End: &start}
			return b
		}, "schedule.end must be after schedule.start"},
		{"empty tag key", func() client.Object {
			b := validBatch()
			b.Spec.Tags = map[string]string{"": "x"}
			return b
		}, "tag keys must not be empty"},
		{"reserved tag keys", func() client.Object {
			b := validBatch()
			b.Spec.Tags = map[string]string{"_ed25519_signature": "forged", "_package_udi": "injected", "ok": "1"}
			return b
		}, "reserved for the entries otafleet sets from the Firmware (_package_udi, _ed25519_signature): rename them"},
		{"negative retry interval", func() client.Object {
			b := validBatch()
			b.Spec.Retry = &otav1.RetryPolicy{Count: 1, Interval: dur(-5 * time.Minute)}
			return b
		}, "retry.interval must be at least 1s, not -5m0s"},
		{"zero retry interval", func() client.Object {
			b := validBatch()
			b.Spec.Retry = &otav1.RetryPolicy{Count: 1, Interval: dur(0)}
			return b
		}, "retry.interval must be at least 1s, not 0s"},
		{"negative wave pause", func() client.Object {
			b := validBatch()
			b.Spec.Waves = []otav1.Wave{{Percent: 10, Pause: &otav1.WavePause{Duration: dur(-5 * time.Minute)}}, {Percent: 100}}
			return b
		}, "pause.duration must be at least 1s, not -5m0s"},
		{"zero wave pause", func() client.Object {
			b := validBatch()
			b.Spec.Waves = []otav1.Wave{{Percent: 10, Pause: &otav1.WavePause{Duration: dur(0)}}, {Percent: 100}}
			return b
		}, "pause.duration must be at least 1s"},
		{"verification timeout below 1m", func() client.Object { r := validRun(); r.Spec.Timeout = dur(time.Second); return r }, "timeout must be between 1m and 24h, not 1s"},
		{"invalid source version", func() client.Object {
			b := validBatch()
			b.Spec.SourceVersions = []string{"1.0 beta"}
			return b
		}, "spec.sourceVersions[0]"},
		{"cancel state not active", func() client.Object {
			b := validBatch()
			b.Spec.Cancel = &otav1.CancelPolicy{States: []otav1.TaskState{otav1.TaskSucceeded}}
			return b
		}, "only active states"},
		{"too many verification devices", func() client.Object { r := validRun(); r.Spec.Devices = elevenDevices; return r }, "spec.devices: Too many: 11"},
		{"no verification devices", func() client.Object { r := validRun(); r.Spec.Devices = nil; return r }, "spec.devices"},
		{"invalid firmware version", func() client.Object { f := validFirmware(); f.Spec.Version = "2.0/evil"; return f }, "spec.version"},
		{"firmware version too long", func() client.Object {
			f := validFirmware()
			f.Spec.Version = fmt.Sprintf("%065d", 1)
			return f
		}, "spec.version"},
		{"firmware with two sources", func() client.Object {
			f := validFirmware()
			f.Spec.Source.Object = &otav1.ObjectSource{Key: "k"}
			return f
		}, "exactly one of upload, url or object must be set"},
		{"url source without sha256", func() client.Object {
			f := validFirmware()
			f.Spec.Source = otav1.FirmwareSource{URL: &otav1.URLSource{URL: "https://x/y.bin"}}
			return f
		}, "spec.source.url.sha256"},
		{"diff without source version", func() client.Object { f := validFirmware(); f.Spec.Diff = true; return f }, "diffSourceVersion is required"},
		{"bad sign method", func() client.Object { f := validFirmware(); f.Spec.SignMethod = "SHA1"; return f }, "spec.signMethod"},
		{"bad product key", func() client.Object {
			p := &otav1.Product{}
			p.Spec.ProductKey = "a/b"
			return p
		}, "spec.productKey"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := tc.obj()
			obj.SetName(fmt.Sprintf("bad-%d", i))
			obj.SetNamespace(ns)
			wantRefused(t, cp.Client.Create(context.Background(), obj), tc.want)
		})
	}
}

func TestImmutableFieldsRefused(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()

	cases := []struct {
		name   string
		obj    client.Object
		mutate func(client.Object)
		want   string
	}{
		{"firmware version", validFirmware(), func(o client.Object) { o.(*otav1.Firmware).Spec.Version = "9.9.9" }, "product, module and version are immutable"},
		{"firmware source", validFirmware(), func(o client.Object) {
			o.(*otav1.Firmware).Spec.Source = otav1.FirmwareSource{Object: &otav1.ObjectSource{Key: "k"}}
		}, "source is immutable"},
		{"batch firmware", validBatch(), func(o client.Object) { o.(*otav1.UpgradeBatch).Spec.Firmware = "other" }, "firmware is immutable"},
		{"batch type", validBatch(), func(o client.Object) { o.(*otav1.UpgradeBatch).Spec.Type = otav1.BatchDynamic }, "type is immutable"},
		{"batch uncancel", func() client.Object {
			b := validBatch()
			b.Spec.Cancel = &otav1.CancelPolicy{}
			return b
		}(), func(o client.Object) { o.(*otav1.UpgradeBatch).Spec.Cancel = nil }, "a canceled batch cannot be resumed"},
		{"run devices", validRun(), func(o client.Object) { o.(*otav1.VerificationRun).Spec.Devices = []string{"x"} }, "firmware and devices are immutable"},
		{"product key", func() client.Object {
			p := &otav1.Product{}
			p.Spec.ProductKey = "pk1"
			return p
		}(), func(o client.Object) { o.(*otav1.Product).Spec.ProductKey = "pk2" }, "productKey is immutable"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.obj.SetName(fmt.Sprintf("immutable-%d", i))
			tc.obj.SetNamespace(ns)
			if err := cp.Client.Create(ctx, tc.obj); err != nil {
				t.Fatalf("valid object refused: %v", err)
			}
			tc.mutate(tc.obj)
			wantRefused(t, cp.Client.Update(ctx, tc.obj), tc.want)
		})
	}
}

func TestMutableFieldsAccepted(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	b := validBatch()
	b.Name, b.Namespace = "mutable", ns
	if err := cp.Client.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	b.Spec.Paused = true
	b.Spec.RatePerMinute = 500
	b.Spec.PromotedWaves = 1
	if err := cp.Client.Update(ctx, b); err != nil {
		t.Errorf("pausing and changing the rate refused: %v", err)
	}
}
