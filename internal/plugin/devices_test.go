package plugin

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

func deviceSlice(ns, name, pk string, devs ...otav1.DeviceRecord) *otav1.DeviceSlice {
	return &otav1.DeviceSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{otav1.LabelProductKey: pk}},
		ProductKey: pk, Devices: devs,
	}
}

func dev(name, wifi, mcu string, lock *otav1.DeviceLock) otav1.DeviceRecord {
	return otav1.DeviceRecord{Name: name, LastSeen: time.Now().Add(-5 * time.Minute).Unix(), Lock: lock,
		Modules: []otav1.ModuleVersion{{Module: "wifi", Version: wifi}, {Module: "mcu", Version: mcu}}}
}

func TestDevicesInventoryFilters(t *testing.T) {
	ctx := testCtx(t)
	ns := newNamespace(t, ctx)
	lock := &otav1.DeviceLock{Campaign: "UpgradeBatch/wifi-rollout", Module: "wifi", State: otav1.TaskInProgress}
	mustCreate(t, ctx,
		&otav1.Product{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plug"}, Spec: otav1.ProductSpec{ProductKey: "pkPlug"}},
		deviceSlice(ns, "plug-a", "pkPlug", dev("d1", "1.0.0", "2.0.0", nil), dev("d2", "1.1.0", "2.0.0", lock)),
		deviceSlice(ns, "plug-b", "pkPlug", dev("d3", "1.0.0", "2.2.0", nil)),
		deviceSlice(ns, "plug-c", "pkPlug", dev("d4", "1.0.0", "2.0.0", lock)),
		// Another product in the same namespace must never show up.
		deviceSlice(ns, "lamp-a", "pkLamp", dev("lamp1", "1.0.0", "2.0.0", nil)),
	)

	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"all", nil, []string{"d1", "d2", "d3", "d4"}},
		{"module and version", []string{"--module", "wifi", "--version", "1.0.0"}, []string{"d1", "d3", "d4"}},
		{"version of any module", []string{"--version", "2.2.0"}, []string{"d3"}},
		{"version of another module", []string{"--module", "wifi", "--version", "2.2.0"}, nil},
		{"task state", []string{"--state", "in_progress"}, []string{"d2", "d4"}},
		{"limit across pages", []string{"--limit", "3"}, []string{"d1", "d2", "d3"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// One slice a page proves the rows of every page are printed.
			args := append([]string{"devices", "--product", "plug", "--chunk-size", "1"}, tc.args...)
			out, _, err := kubectlOTA(ctx, kubeconfig, ns, args...)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				if !strings.Contains(out, "No devices") {
					t.Fatalf("want no devices, got\n%s", out)
				}
				return
			}
			if got := column(out); !slices.Equal(got, tc.want) {
				t.Fatalf("devices %v, want %v\n%s", got, tc.want, out)
			}
		})
	}

	out, _, err := kubectlOTA(ctx, kubeconfig, ns, "devices", "--product", "plug", "--state", "IN_PROGRESS")
	if err != nil {
		t.Fatal(err)
	}
	header := strings.Fields(strings.SplitN(out, "\n", 2)[0])
	if !slices.Equal(header, []string{"NAME", "MODULES", "LAST", "SEEN", "TASK"}) {
		t.Fatalf("header %v", header)
	}
	if !strings.Contains(out, "wifi=1.1.0,mcu=2.0.0") || !strings.Contains(out, "ub/wifi-rollout:IN_PROGRESS") ||
		!regexp.MustCompile(`5m(\d+s)? ago`).MatchString(out) {
		t.Fatalf("row cells missing:\n%s", out)
	}
	if _, _, err := kubectlOTA(ctx, kubeconfig, ns, "devices", "--product", "nope"); err == nil {
		t.Fatal("an unknown product must fail")
	}
}

func upgradeSlice(ns, name, campaign string, kind otav1.CampaignKind, tasks ...otav1.DeviceTask) *otav1.UpgradeSlice {
	return &otav1.UpgradeSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{
			otav1.LabelCampaign: campaign, otav1.LabelKind: string(kind), otav1.LabelProductKey: "pkPlug"}},
		Campaign:   otav1.CampaignReference{Kind: kind, Name: campaign},
		ProductKey: "pkPlug", Module: "wifi", Tasks: tasks,
	}
}

func task(d string, s otav1.TaskState, step, attempt int32, reason string) otav1.DeviceTask {
	return otav1.DeviceTask{Device: d, State: s, Step: step, Attempt: attempt, Reason: reason, FromVersion: "1.0.0"}
}

func newBatch(ns, name string) *otav1.UpgradeBatch {
	return &otav1.UpgradeBatch{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: otav1.UpgradeBatchSpec{Firmware: "plug-wifi-1.1.0"}}
}

func TestDevicesOfBatch(t *testing.T) {
	ctx := testCtx(t)
	ns := newNamespace(t, ctx)
	mustCreate(t, ctx, newBatch(ns, "rollout"),
		upgradeSlice(ns, "rollout-1", "rollout", otav1.KindUpgradeBatch,
			task("d1", otav1.TaskSucceeded, 100, 1, ""),
			task("d2", otav1.TaskFailed, -2, 3, otav1.FailureDownload)),
		upgradeSlice(ns, "rollout-2", "rollout", otav1.KindUpgradeBatch,
			task("d3", otav1.TaskInProgress, 40, 1, ""),
			task("d4", otav1.TaskFailed, 0, 1, otav1.FailureBusy)),
		// A VerificationRun of the same name and another batch stay out.
		upgradeSlice(ns, "vr-rollout-1", "rollout", otav1.KindVerificationRun, task("t1", otav1.TaskFailed, -1, 1, "x")),
		upgradeSlice(ns, "other-1", "other", otav1.KindUpgradeBatch, task("o1", otav1.TaskFailed, -1, 1, "x")),
	)
	out, _, err := kubectlOTA(ctx, kubeconfig, ns, "devices", "--batch", "rollout", "--chunk-size", "1")
	if err != nil {
		t.Fatal(err)
	}
	if got := column(out); !slices.Equal(got, []string{"d1", "d2", "d3", "d4"}) {
		t.Fatalf("devices %v\n%s", got, out)
	}
	out, _, err = kubectlOTA(ctx, kubeconfig, ns, "devices", "--batch", "rollout", "--state", "FAILED")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !slices.Equal(strings.Fields(lines[0]), []string{"NAME", "STATE", "STEP", "ATTEMPT", "REASON"}) ||
		!slices.Equal(strings.Fields(lines[1]), []string{"d2", "FAILED", "-2", "3", otav1.FailureDownload}) ||
		!slices.Equal(strings.Fields(lines[2]), []string{"d4", "FAILED", "0", "1", otav1.FailureBusy}) {
		t.Fatalf("unexpected table:\n%s", out)
	}
	out, _, err = kubectlOTA(ctx, kubeconfig, ns, "devices", "--batch", "rollout", "--module", "mcu")
	if err != nil || !strings.Contains(out, "No device tasks") {
		t.Fatalf("module filter: %v\n%s", err, out)
	}
}

// TestDevicesManyPages lists a product big enough to need several default
// pages and checks that every device is printed once.
func TestDevicesManyPages(t *testing.T) {
	ctx := testCtx(t)
	ns := newNamespace(t, ctx)
	mustCreate(t, ctx, &otav1.Product{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plug"}, Spec: otav1.ProductSpec{ProductKey: "pkMany"}})
	const slicesN = slicesPerPage*2 + 3
	for s := range slicesN {
		devs := make([]otav1.DeviceRecord, 10)
		for i := range devs {
			devs[i] = dev(fmt.Sprintf("dev-%03d-%d", s, i), "1.0.0", "2.0.0", nil)
		}
		mustCreate(t, ctx, deviceSlice(ns, fmt.Sprintf("s-%03d", s), "pkMany", devs...))
	}
	out, _, err := kubectlOTA(ctx, kubeconfig, ns, "devices", "--product", "plug")
	if err != nil {
		t.Fatal(err)
	}
	got := column(out)
	seen := map[string]bool{}
	for _, n := range got {
		seen[n] = true
	}
	if len(got) != slicesN*10 || len(seen) != slicesN*10 {
		t.Fatalf("%d rows, %d distinct; want %d", len(got), len(seen), slicesN*10)
	}
}
