package controllers

// The objects in test/kstatus/testdata are every kind in every phase with
// the status these reconcilers compute; test/kstatus writes them to a real
// API server and checks what kstatus (Flux, kubectl wait) and the Argo CD
// health check make of them. This test keeps the fixtures true to the code:
//
//	go test ./controllers -run TestHealthFixtures -update-health-fixtures
//
// rewrites them after a deliberate change.

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/yaml"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/fleet"
	"github.com/otafleet/otafleet/internal/rollout"
	otascheme "github.com/otafleet/otafleet/internal/scheme"
)

var updateHealthFixtures = flag.Bool("update-health-fixtures", false, "rewrite test/kstatus/testdata from the reconcilers' status code")

const healthFixtureDir = "../test/kstatus/testdata"

// fixtureTime replaces every time in a fixture, so that it is stable.
var fixtureTime = metav1.NewTime(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC))

func TestHealthFixtures(t *testing.T) {
	fixtures := map[string]client.Object{}
	for name, obj := range batchFixtures() {
		fixtures["upgradebatch-"+name] = obj
	}
	for name, obj := range runFixtures() {
		fixtures["verificationrun-"+name] = obj
	}
	for name, obj := range firmwareFixtures(t) {
		fixtures["firmware-"+name] = obj
	}
	for name, obj := range productFixtures(t) {
		fixtures["product-"+name] = obj
	}
	for name, obj := range fixtures {
		want := fixtureYAML(t, obj)
		path := filepath.Join(healthFixtureDir, name+".yaml")
		if *updateHealthFixtures {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is not what the reconcilers compute (run with -update-health-fixtures):\n%s", path, want)
		}
	}
	files, _ := filepath.Glob(filepath.Join(healthFixtureDir, "*.yaml"))
	if len(files) != len(fixtures) {
		t.Errorf("%d fixture files for %d fixtures: remove the stale ones", len(files), len(fixtures))
	}
}

// fixtureYAML serializes obj with every time replaced by fixtureTime.
func fixtureYAML(t *testing.T, obj client.Object) []byte {
	t.Helper()
	gvk, err := apiutil.GVKForObject(obj, otascheme.New())
	if err != nil {
		t.Fatal(err)
	}
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	obj.SetGeneration(1)
	data, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	delete(m["metadata"].(map[string]any), "creationTimestamp")
	stableTimes(m)
	out, err := yaml.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// stableTimes sets the status times the reconcilers take from the clock.
func stableTimes(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			switch k {
			case "lastTransitionTime", "completionTime", "time":
				v[k] = fixtureTime.UTC().Format(time.RFC3339)
			default:
				stableTimes(child)
			}
		}
	case []any:
		for _, child := range v {
			stableTimes(child)
		}
	}
}

func fixtureBatch(name string) *otav1.UpgradeBatch {
	return &otav1.UpgradeBatch{
		ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1},
		Spec: otav1.UpgradeBatchSpec{Firmware: "plug-wifi-1.1.0", Type: otav1.BatchStatic,
			Scope: otav1.Scope{Type: otav1.ScopeAll}, RatePerMinute: 10000},
	}
}

func batchFixtures() map[string]client.Object {
	r := &UpgradeBatchReconciler{}
	counts := otav1.TaskCounts{Total: 1000, Succeeded: 400, Failed: 10, InProgress: 90, Queued: 500}
	running := fleet.Status{Phase: otav1.BatchRunning, Counts: counts, CurrentWave: 2, Waves: 3,
		StartTime: fixtureTime.Time, SelectionComplete: true, Slices: 10}
	done := otav1.TaskCounts{Total: 1000, Succeeded: 990, Failed: 10}
	withStatus := func(name string, s fleet.Status) client.Object {
		ub := fixtureBatch(name)
		r.setStatus(ub, s)
		return ub
	}
	waiting := func(name string, state otav1.VerificationState) client.Object {
		ub := fixtureBatch(name)
		fw := &otav1.Firmware{ObjectMeta: metav1.ObjectMeta{Name: ub.Spec.Firmware}}
		fw.Status.Verification.State = state
		r.setWaiting(ub, verificationWait(fw))
		return ub
	}
	heldAt := func(s fleet.Status, held string, until time.Time) fleet.Status {
		s.Held, s.PausedUntil = held, until
		return s
	}
	paused := running
	paused.Phase = otav1.BatchPaused
	soakHeld := running
	soakHeld.Held, soakHeld.Gate, soakHeld.HeldWave = "wave 1: 40 devices soaking until 2026-12-01T09:00:00Z; 50 of 50 soaked devices succeeded so far", otav1.GateSoak, 1
	soakHeld.Counts = otav1.TaskCounts{Total: 1000, Succeeded: 50, Soaking: 40, Queued: 910}
	outside := running
	outside.Windows, outside.Window = true, rollout.WindowState{Until: fixtureTime.Add(18 * time.Hour)}
	reverted := fleet.Status{Phase: otav1.BatchAborted, Counts: otav1.TaskCounts{Total: 1000, Succeeded: 40, Reverted: 10, Canceled: 950},
		CurrentWave: 1, Waves: 3, Aborted: "10 of 50 devices whose soak ended reverted, more than the 5% allowed", CompletionTime: fixtureTime.Time}
	badWindow := fixtureBatch("invalid-window")
	_, err := parseWindows([]otav1.MaintenanceWindow{{Schedule: "0 25 * * *", Duration: metav1.Duration{Duration: time.Hour}}})
	r.setWaiting(badWindow, err)
	return map[string]client.Object{
		"wave-soaking":        withStatus("wave-soaking", soakHeld),
		"outside-window":      withStatus("outside-window", outside),
		"aborted-on-reverts":  withStatus("aborted-on-reverts", reverted),
		"invalid-window":      badWindow,
		"scheduled":           withStatus("scheduled", fleet.Status{Phase: otav1.BatchPlanned, Waves: 1}),
		"firmware-verifying":  waiting("firmware-verifying", otav1.VerificationVerifying),
		"firmware-unverified": waiting("firmware-unverified", ""),
		"firmware-failed":     waiting("firmware-failed", otav1.VerificationFailed),
		"running":             withStatus("running", running),
		"wave-timed-pause": withStatus("wave-timed-pause",
			heldAt(running, "paused after wave 2 until 2026-12-01T08:30:00Z", fixtureTime.Add(30*time.Minute))),
		"wave-until-promoted": withStatus("wave-until-promoted",
			heldAt(running, "paused after wave 2 until promoted", time.Time{})),
		"paused": withStatus("paused", paused),
		"completed": withStatus("completed", fleet.Status{Phase: otav1.BatchCompleted, Counts: done,
			CurrentWave: 3, Waves: 3, StartTime: fixtureTime.Time, CompletionTime: fixtureTime.Time}),
		"aborted": withStatus("aborted", fleet.Status{Phase: otav1.BatchAborted, Counts: done, CurrentWave: 1, Waves: 3,
			Aborted: "10 of 100 finished devices failed, over the 5% limit", CompletionTime: fixtureTime.Time}),
		"canceled": withStatus("canceled", fleet.Status{Phase: otav1.BatchCanceled, Counts: done, Waves: 1}),
	}
}

func runFixtures() map[string]client.Object {
	devices := []otav1.DeviceResult{{Name: "lab-plug-01", State: otav1.TaskSucceeded},
		{Name: "lab-plug-02", State: otav1.TaskFailed, Reason: otav1.FailureFlash}}
	run := func(name string, phase otav1.BatchPhase, succeeded int64) client.Object {
		vr := &otav1.VerificationRun{
			ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1},
			Spec:       otav1.VerificationRunSpec{Firmware: "plug-wifi-1.1.0", Devices: []string{"lab-plug-01", "lab-plug-02"}},
		}
		setRunStatus(vr, fleet.Status{Phase: phase, Devices: devices, StartTime: fixtureTime.Time,
			Counts: otav1.TaskCounts{Total: 2, Succeeded: succeeded, Failed: 2 - succeeded}})
		return vr
	}
	return map[string]client.Object{
		"pending":   run("pending", otav1.BatchPlanned, 0),
		"running":   run("running", otav1.BatchRunning, 1),
		"succeeded": run("succeeded", otav1.BatchCompleted, 2),
		"failed":    run("failed", otav1.BatchCompleted, 1),
		"canceled":  run("canceled", otav1.BatchCanceled, 1),
	}
}

func firmwareFixtures(t *testing.T) map[string]client.Object {
	r := &FirmwareReconciler{Store: brokenStore{}}
	fixture := func(name string, state otav1.VerificationState, step func(*firmwareScope)) client.Object {
		fw := &otav1.Firmware{
			ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1},
			Spec: otav1.FirmwareSpec{Product: "plug", Module: "wifi", Version: "1.1.0",
				Source: otav1.FirmwareSource{Upload: &otav1.UploadSource{}}, SignMethod: otav1.SignMethodSHA256},
		}
		fw.Status.Artifact = &otav1.Artifact{Bucket: "otafleet-firmware", Key: "plug/wifi/1.1.0.bin", Size: 1 << 20,
			MD5: "0cc175b9c0f1b6a831c399e269772661", SHA256: "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"}
		if state != "" {
			fw.Status.Verification = otav1.Verification{State: state, Run: "plug-wifi-1.1.0-lab", Message: "lab-plug-02: FlashFailed"}
		}
		s := newFirmwareScope(fw)
		if step != nil {
			fw.Status.Artifact = nil
			step(s)
		}
		r.summarize(t.Context(), s)
		return fw
	}
	return map[string]client.Object{
		"stored":              fixture("stored", otav1.VerificationUnverified, nil),
		"verifying":           fixture("verifying", otav1.VerificationVerifying, nil),
		"verified":            fixture("verified", otav1.VerificationVerified, nil),
		"verification-failed": fixture("verification-failed", otav1.VerificationFailed, nil),
		"waiting-for-upload": fixture("waiting-for-upload", "", func(s *firmwareScope) {
			s.wait(otav1.ReasonWaitingForUpload, "Waiting for the image at the upload URL", time.Minute)
		}),
		"digest-mismatch": fixture("digest-mismatch", "", func(s *firmwareScope) {
			s.stall(otav1.ReasonDigestMismatch, "The image's SHA-256 differs from spec.source.url.sha256")
		}),
	}
}

func productFixtures(t *testing.T) map[string]client.Object {
	r := &ProductReconciler{Recorder: events.NewFakeRecorder(10)}
	product := func(name string) *otav1.Product {
		return &otav1.Product{ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1},
			Spec: otav1.ProductSpec{ProductKey: "a1SmartPlug", Modules: []string{"wifi"}}}
	}
	owner := product("with-devices")
	r.markOwner(owner, inventory{devices: 1200, slices: 12, modules: []otav1.ModuleVersions{
		{Module: "wifi", Versions: []otav1.VersionCount{{Version: "1.0.0", Devices: 800}, {Version: "1.1.0", Devices: 400}}}}})
	dup := product("duplicate-key")
	r.markDuplicate(t.Context(), dup, "productKey a1SmartPlug belongs to another Product")
	return map[string]client.Object{"with-devices": owner, "duplicate-key": dup}
}
