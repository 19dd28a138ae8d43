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
// simulator's outcomes.
func TestPlaygroundRunsToCompletion(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "otafleet-lab")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/otafleet-lab")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building otafleet-lab: %v\n%s", err, out)
	}
	var stdout, stderr bytes.Buffer
	run := exec.Command(bin, "--devices", "60", "--download-fail", "0.05", "--flash-fail", "0.05",
		"--broker-address", "", "--progress-interval", "100ms", "--summary-json")
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
	if !bytes.Contains(stderr.Bytes(), []byte("kubectl -n demo get ota")) {
		t.Errorf("the playground does not tell how to explore:\n%s", stderr.String())
	}
}
