package main

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/appapi"
)

// TestRenderBeforeFirstWave: the first progress line, printed before the
// controller reconciled the batch, must not claim a "wave 0/1".
func TestRenderBeforeFirstWave(t *testing.T) {
	ub := &otav1.UpgradeBatch{Spec: otav1.UpgradeBatchSpec{Waves: []otav1.Wave{{Percent: 5}, {Percent: 30}, {Percent: 100}}}}
	if line := render(ub); !strings.HasPrefix(line, "Pending   wave -/3 ") {
		t.Errorf("unreconciled batch: %q", line)
	}
	ub.Status = otav1.UpgradeBatchStatus{Phase: otav1.BatchRunning, CurrentWave: 2, Waves: 3}
	if line := render(ub); !strings.HasPrefix(line, "Running   wave 2/3 ") {
		t.Errorf("running batch: %q", line)
	}
	plain := &otav1.UpgradeBatch{Status: otav1.UpgradeBatchStatus{Phase: otav1.BatchPlanned}}
	if line := render(plain); !strings.HasPrefix(line, "Planned   wave -/1 ") {
		t.Errorf("batch without waves: %q", line)
	}
}

func TestDemoTokenAccepted(t *testing.T) {
	o, err := appAPIOptions("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	token, err := demoToken(o, []string{"pk/d1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// Checked as the app API checks it: HS256 only, issuer, audience, exp.
	var cl appapi.Claims
	_, err = jwt.ParseWithClaims(token, &cl, func(*jwt.Token) (any, error) { return o.Keys.HMACSecret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer(appIssuer), jwt.WithAudience(appAudience), jwt.WithExpirationRequired())
	if err != nil || cl.Subject != demoUser || len(cl.Devices) != 1 || cl.Devices[0] != "pk/d1" {
		t.Fatalf("token %q: claims %+v, %v", token, cl, err)
	}
}

func TestManagerLogLevels(t *testing.T) {
	dir := t.TempDir()
	for _, level := range []string{"info", "debug", "error", "3"} {
		if _, _, err := managerLog(dir, level); err != nil {
			t.Errorf("--log-level %s: %v", level, err)
		}
	}
	if _, _, err := managerLog(dir, "loud"); err == nil {
		t.Error("--log-level loud accepted")
	}
}
