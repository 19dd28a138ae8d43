package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otafleet/otafleet/internal/devicesim"
)

func TestRunUntilInformedPrintsJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run([]string{"-embedded-broker", "-devices", "50", "-modules", "wifi=1.0.0,mcu=2.1",
		"-until-informed", "-json", "-report-every", "0"}, &out, &errOut)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	var s devicesim.Summary
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatalf("output is not a JSON summary: %v\n%s", err, out.String())
	}
	if s.Devices != 50 || s.Informed != 50 || s.Versions["mcu"]["2.1"] != 50 || s.Versions["wifi"]["1.0.0"] != 50 {
		t.Fatalf("summary %+v", s)
	}
	if !strings.Contains(errOut.String(), "all 50 devices informed") {
		t.Fatalf("stderr lacks the timing line:\n%s", errOut.String())
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parse([]string{"-devices", "7", "-mode", "per-device", "-fail-flash", "0.25", "-fail-upgrade", "0.1", "-instant",
		"-modules", "default=app-1.0.0"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := o.cfg
	if c.Devices != 7 || c.Mode != devicesim.PerDevice || c.Failures.FlashFail != 0.25 || c.Failures.UpgradeFail != 0.1 || !c.Instant ||
		len(c.Modules) != 1 || c.Modules[0].Version != "app-1.0.0" {
		t.Fatalf("config %+v", c)
	}
	o, err = parse([]string{"-profile", "sdk4", "-hosts", "dl.example.com=127.0.0.1:8080"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.Profile != devicesim.ProfileSDK4 || o.cfg.Hosts["dl.example.com"] != "127.0.0.1:8080" || o.cfg.Mode != "" {
		t.Fatalf("config %+v", o.cfg)
	}
	for _, bad := range [][]string{{"-modules", "wifi"}, {"extra"}, {"-devices", "x"}, {"-hosts", "dl.example.com"}} {
		if _, err := parse(bad, io.Discard); err == nil {
			t.Errorf("parse(%q) accepted it", bad)
		}
	}
}

func TestRunSDK4OnTheEmbeddedBroker(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run([]string{"-embedded-broker", "-profile", "sdk4", "-devices", "5", "-until-informed", "-json", "-report-every", "0"}, &out, &errOut)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	var s devicesim.Summary
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatalf("output is not a JSON summary: %v\n%s", err, out.String())
	}
	if s.Informed != 5 || s.Connections != 5 || s.ContractViolations != 0 {
		t.Fatalf("summary %+v", s)
	}
}

func TestRunWritesTheRecordOnExit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "record.jsonl")
	var out, errOut bytes.Buffer
	err := run([]string{"-embedded-broker", "-devices", "3", "-modules", "wifi=1.0.0", "-until-informed", "-report-every", "0",
		"-record", path}, &out, &errOut)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines for 3 devices:\n%s", len(lines), data)
	}
	for i, line := range lines {
		var d devicesim.DeviceStatus
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if d.Name != fmt.Sprintf("dev-%06d", i) || d.Versions["wifi"] != "1.0.0" || !d.Informed || len(d.History) != 0 {
			t.Fatalf("line %d: %+v", i+1, d)
		}
	}
}
