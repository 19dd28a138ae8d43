package e2e

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/devicesim"
)

// TestPlaygroundRunsToCompletion builds and runs `otafleet-lab` (what `make
// demo` runs) with a small fleet and checks its final counts against the
// simulator's outcomes. Its devices behave as LinkSDK 4.x devices do (they
// never subscribe, read pushes naively and download in ranged parts) and
// download on port 80 (--device-http), as a device on the desk would; the
// other end-to-end tests run 3.x devices.
func TestPlaygroundRunsToCompletion(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "otafleet-lab")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/otafleet-lab")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building otafleet-lab: %v\n%s", err, out)
	}
	var stdout, stderr bytes.Buffer
	run := exec.Command(bin, "--devices", "60", "--download-fail", "0.05", "--flash-fail", "0.05",
		"--broker-address", "", "--progress-interval", "100ms", "--summary-json",
		"--profile", "sdk4", "--device-http", "--device-host", "127.0.0.1")
	run.Stdout, run.Stderr = &stdout, &stderr
	if err := run.Run(); err != nil {
		t.Fatalf("otafleet-lab: %v\n%s", err, stderr.String())
	}
	var sum struct {
		Phase  otav1.BatchPhase  `json:"phase"`
		Counts otav1.TaskCounts  `json:"counts"`
		Fleet  devicesim.Summary `json:"fleet"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
		t.Fatalf("summary %q: %v\n%s", stdout.String(), err, stderr.String())
	}
	failed := int64(sum.Fleet.Outcomes[devicesim.OutcomeDownloadFailed] + sum.Fleet.Outcomes[devicesim.OutcomeFlashFailed])
	n := sum.Counts
	// 60 devices, 3 of which upgraded in the verification run.
	if sum.Phase != otav1.BatchCompleted || n.Total != 57 || n.Failed != failed || n.Succeeded != 57-failed {
		t.Fatalf("playground ended %s with %+v; simulator outcomes %v\n%s", sum.Phase, n, sum.Fleet.Outcomes, stderr.String())
	}
	if sum.Fleet.Versions["wifi"]["1.1.0"] != int(60-failed) {
		t.Fatalf("fleet versions %v", sum.Fleet.Versions)
	}
	// Every device that upgraded downloaded through port 80, and none met
	// anything a field device could not take.
	if sum.Fleet.ContractViolations != 0 || sum.Fleet.Downloads < int64(60-failed) {
		t.Fatalf("violations %d %v, downloads %d", sum.Fleet.ContractViolations, sum.Fleet.Violations, sum.Fleet.Downloads)
	}
	if !bytes.Contains(stderr.Bytes(), []byte("downloads from http://127.0.0.1 (port 80)")) {
		t.Errorf("the playground does not say where devices download:\n%s", stderr.String())
	}
	if !bytes.Contains(stderr.Bytes(), []byte("kubectl -n demo get ota")) {
		t.Errorf("the playground does not tell how to explore:\n%s", stderr.String())
	}
}
