package crd

import (
	"context"
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/yaml"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

func createSpec(ns, kind, name, spec string) error {
	m := map[string]any{}
	if err := yaml.Unmarshal([]byte(spec), &m); err != nil {
		return err
	}
	obj := &unstructured.Unstructured{Object: map[string]any{"spec": m}}
	obj.SetAPIVersion(otav1.GroupVersion.String())
	obj.SetKind(kind)
	obj.SetName(name)
	obj.SetNamespace(ns)
	return cp.Client.Create(context.Background(), obj)
}

// Maintenance windows and soaks as a person writes them: a shape CEL can
// check is refused by the API server with what to change. (A schedule of
// the right shape that still does not parse, or a zone name that is not in
// the zone database, is the controller's: it stalls the campaign with the
// parser's message; see controllers.)
func TestSafetyManifestsRefused(t *testing.T) {
	ns := newNamespace(t)
	cases := []struct {
		name, kind, spec, want string
	}{
		{"cron in words", "UpgradeBatch", `{firmware: fw, maintenanceWindows: [{schedule: every night, duration: 2h}]}`,
			"schedule must be a cron expression of 5 fields"},
		{"cron of 3 fields", "UpgradeBatch", `{firmware: fw, maintenanceWindows: [{schedule: "0 2 *", duration: 2h}]}`,
			"schedule must be a cron expression of 5 fields"},
		{"zone in the schedule", "UpgradeBatch", `{firmware: fw, maintenanceWindows: [{schedule: "CRON_TZ=Europe/Berlin 0 2 * * *", duration: 2h}]}`,
			"set the time zone in timeZone"},
		{"window without a duration", "UpgradeBatch", `{firmware: fw, maintenanceWindows: [{schedule: "0 2 * * *"}]}`,
			"spec.maintenanceWindows[0].duration: Required value"},
		{"window of 5 seconds", "UpgradeBatch", `{firmware: fw, maintenanceWindows: [{schedule: "0 2 * * *", duration: 5s}]}`,
			"duration must be between 10s and 168h, not 5s"},
		{"window of two weeks", "UpgradeBatch", `{firmware: fw, maintenanceWindows: [{schedule: "@weekly", duration: 336h}]}`,
			"duration must be between 10s and 168h, not 336h"},
		{"window duration in days", "UpgradeBatch", `{firmware: fw, maintenanceWindows: [{schedule: "@daily", duration: 1d}]}`,
			"duration must be a duration such as 90s, 10m or 1h30m, not 1d"},
		{"zone with spaces", "UpgradeBatch", `{firmware: fw, maintenanceWindows: [{schedule: "@daily", duration: 1h, timeZone: "Central European Time"}]}`,
			"spec.maintenanceWindows[0].timeZone"},
		{"soak in days", "UpgradeBatch", `{firmware: fw, soak: 2d}`, "soak must be a duration such as 90s, 10m or 1h30m, not 2d"},
		{"negative soak", "UpgradeBatch", `{firmware: fw, soak: -1h}`, "soak must be between 0s and 168h, not -1h"},
		{"revert percent over 100", "UpgradeBatch", `{firmware: fw, abort: {maxRevertedPercent: 150}}`,
			"spec.abort.maxRevertedPercent"},
		{"run window cron in words", "VerificationRun", `{firmware: fw, devices: [d1], maintenanceWindows: [{schedule: nightly, duration: 1h}]}`,
			"schedule must be a cron expression of 5 fields"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantRefused(t, createSpec(ns, tc.kind, fmt.Sprintf("bad-%d", i), tc.spec), tc.want)
		})
	}
}

// The forms the guide shows are accepted, and the zone defaults to UTC.
func TestSafetyManifestsAccepted(t *testing.T) {
	ns := newNamespace(t)
	for i, spec := range []string{
		`{firmware: fw, soak: 30m, abort: {maxRevertedPercent: 5}, maintenanceWindows: [{schedule: "0 2 * * MON-FRI", duration: 3h, timeZone: Europe/Berlin}]}`,
		`{firmware: fw, soak: 0s, maintenanceWindows: [{schedule: "@daily", duration: 1h}, {schedule: "*/30 * * * * *", duration: 10s, timeZone: America/Argentina/Buenos_Aires}]}`,
		`{firmware: fw, soak: 1h0m0s, abort: {maxRevertedPercent: 0}}`,
	} {
		if err := createSpec(ns, "UpgradeBatch", fmt.Sprintf("ok-%d", i), spec); err != nil {
			t.Errorf("%s refused: %v", spec, err)
		}
	}
	if err := createSpec(ns, "VerificationRun", "run", `{firmware: fw, devices: [d1], maintenanceWindows: [{schedule: "0 9 * * *", duration: 8h, timeZone: Asia/Shanghai}]}`); err != nil {
		t.Errorf("run refused: %v", err)
	}
	ub := &otav1.UpgradeBatch{}
	if err := cp.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "ok-1"}, ub); err != nil {
		t.Fatal(err)
	}
	if z := ub.Spec.MaintenanceWindows[0].TimeZone; z != "UTC" {
		t.Errorf("timeZone defaulted to %q, want UTC", z)
	}
}
