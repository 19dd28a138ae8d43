package plugin

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/steer"
)

func TestRetryCreatesListBatch(t *testing.T) {
	ctx := testCtx(t)
	ns := newNamespace(t, ctx)
	ub := newBatch(ns, "rollout")
	ub.Spec.SourceVersions = []string{"1.0.0"}
	ub.Spec.RatePerMinute = 600
	ub.Spec.Waves = []otav1.Wave{{Percent: 50, Pause: &otav1.WavePause{}}, {Percent: 100}}
	ub.Spec.Tags = map[string]string{"channel": "beta"}
	ub.Spec.Soak = &metav1.Duration{Duration: 30 * time.Minute}
	ub.Spec.MaintenanceWindows = []otav1.MaintenanceWindow{{Schedule: "0 2 * * *", Duration: metav1.Duration{Duration: 2 * time.Hour}, TimeZone: "Europe/Berlin"}}
	mustCreate(t, ctx, ub,
		upgradeSlice(ns, "rollout-1", "rollout", otav1.KindUpgradeBatch,
			task("d1", otav1.TaskSucceeded, 100, 1, ""),
			task("d9", otav1.TaskFailed, -2, 1, otav1.FailureDownload),
			task("d3", otav1.TaskInProgress, 20, 1, "")),
		upgradeSlice(ns, "rollout-2", "rollout", otav1.KindUpgradeBatch,
			task("d2", otav1.TaskTimedOut, 50, 1, otav1.FailureTimeout),
			task("d4", otav1.TaskCanceled, 0, 0, "")),
		upgradeSlice(ns, "other-1", "other", otav1.KindUpgradeBatch, task("o1", otav1.TaskFailed, -1, 1, "x")),
	)

	out, _, err := kubectlOTA(ctx, kubeconfig, ns, "retry", "rollout")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "rollout-retry-1 created with 2 devices") {
		t.Fatalf("output %q", out)
	}
	nb := getUB(t, ns, "rollout-retry-1")
	s := nb.Spec
	if s.Scope.Type != otav1.ScopeList || !slices.Equal(s.Scope.Devices, []string{"d2", "d9"}) || s.Scope.DevicesFrom != nil {
		t.Fatalf("scope %+v", s.Scope)
	}
	if s.Firmware != ub.Spec.Firmware || s.RatePerMinute != 600 || !slices.Equal(s.SourceVersions, []string{"1.0.0"}) ||
		s.Tags["channel"] != "beta" || len(s.Waves) != 0 || s.Type != otav1.BatchStatic ||
		s.Soak == nil || s.Soak.Duration != 30*time.Minute || len(s.MaintenanceWindows) != 1 || s.MaintenanceWindows[0].TimeZone != "Europe/Berlin" {
		t.Fatalf("spec %+v", s)
	}
	if nb.Annotations[AnnotationRetryOf] != "rollout" {
		t.Fatalf("annotations %v", nb.Annotations)
	}

	// Running it again picks the next free number.
	if _, _, err := kubectlOTA(ctx, kubeconfig, ns, "retry", "rollout"); err != nil {
		t.Fatal(err)
	}
	getUB(t, ns, "rollout-retry-2")

	mustCreate(t, ctx, newBatch(ns, "clean"))
	if _, _, err := kubectlOTA(ctx, kubeconfig, ns, "retry", "clean"); err == nil {
		t.Fatal("retrying a batch without failures must fail")
	}
}

func TestRetryManyDevicesUsesConfigMap(t *testing.T) {
	ctx := testCtx(t)
	ns := newNamespace(t, ctx)
	mustCreate(t, ctx, newBatch(ns, "big"))
	const failed = steer.MaxInlineDevices + 50
	var want []string
	for s := 0; s*otav1.MaxDevicesPerSlice < failed; s++ {
		var tasks []otav1.DeviceTask
		for i := s * otav1.MaxDevicesPerSlice; i < min(failed, (s+1)*otav1.MaxDevicesPerSlice); i++ {
			name := fmt.Sprintf("dev-%05d", i)
			tasks = append(tasks, task(name, otav1.TaskFailed, -3, 1, otav1.FailureVerification))
			want = append(want, name)
		}
		mustCreate(t, ctx, upgradeSlice(ns, fmt.Sprintf("big-%02d", s), "big", otav1.KindUpgradeBatch, tasks...))
	}
	if _, _, err := kubectlOTA(ctx, kubeconfig, ns, "retry", "big"); err != nil {
		t.Fatal(err)
	}
	nb := getUB(t, ns, "big-retry-1")
	ref := nb.Spec.Scope.DevicesFrom
	if len(nb.Spec.Scope.Devices) != 0 || ref == nil || ref.ConfigMapRef == nil || ref.ConfigMapRef.Name != "big-retry-1" {
		t.Fatalf("scope %+v", nb.Spec.Scope)
	}
	cm := &corev1.ConfigMap{}
	if err := cp.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: ref.ConfigMapRef.Name}, cm); err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(cm.Data[ref.ConfigMapRef.Key]); !slices.Equal(got, want) {
		t.Fatalf("ConfigMap holds %d names, want %d", len(got), len(want))
	}
	if !metav1.IsControlledBy(cm, nb) && !slices.ContainsFunc(cm.OwnerReferences, func(o metav1.OwnerReference) bool { return o.UID == nb.UID }) {
		t.Fatalf("ConfigMap is not owned by the batch: %+v", cm.OwnerReferences)
	}
}
