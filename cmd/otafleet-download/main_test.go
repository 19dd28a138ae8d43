package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

var credentials = map[string]string{"OTAFLEET_S3_ACCESS_KEY": "ak", "OTAFLEET_S3_SECRET_KEY": "sk"}

func TestParseFlags(t *testing.T) {
	base := []string{"--s3-endpoint=minio:9000", "--secret-file=/etc/otafleet/secret"}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"minimal", base, credentials, ""},
		{"no endpoint", base[1:], credentials, "--s3-endpoint is required"},
		{"no secret file", base[:1], credentials, "--secret-file is required"},
		{"no credentials", base, nil, "OTAFLEET_S3_ACCESS_KEY"},
		{"negative cap", append(base, "--egress-bytes-per-second=-1"), credentials, "negative"},
		{"cert without key", append(base, "--tls-cert=c.pem"), credentials, "go together"},
		{"unknown flag", append(base, "--download-url=x"), credentials, "not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, env(tt.env), io.Discard)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("parseFlags = %v, want success", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("parseFlags = %v, want an error containing %q", err, tt.wantErr)
			case err == nil && (o.bindAddress != ":8080" || o.accessKey != "ak"):
				t.Fatalf("options %+v: want the default bind address and the credentials from the environment", o)
			}
		})
	}
}

func TestRunServesAndStops(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(strings.Repeat("s", 40)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := parseFlags([]string{"--bind-address=127.0.0.1:0", "--metrics-bind-address=127.0.0.1:0",
		"--s3-endpoint=127.0.0.1:1", "--secret-file=" + secretFile}, env(credentials), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	addrs := make(chan [2]net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, o, logr.Discard(), func(d, m net.Addr) { addrs <- [2]net.Addr{d, m} })
	}()
	var a [2]net.Addr
	select {
	case a = <-addrs:
	case err := <-done:
		t.Fatalf("run stopped before listening: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("run did not listen within 30s")
	}

	// A forged URL never reaches the store, which is not running.
	if code, body := fetch(t, "http://"+a[0].String()+"/f/AAAAAAAAAAAAAAAAAAAAAAAAAAA/fw/x.bin"); code != 403 {
		t.Fatalf("forged URL: %d %q, want 403", code, body)
	}
	if code, body := fetch(t, "http://"+a[1].String()+"/metrics"); code != 200 ||
		!strings.Contains(body, `otafleet_download_requests_total{code="4xx",reason="forbidden"} 1`) {
		t.Fatalf("metrics: %d, want 200 with one forbidden request:\n%s", code, body)
	}
	if code, _ := fetch(t, "http://"+a[1].String()+"/readyz"); code != 200 {
		t.Fatalf("readyz: %d, want 200", code)
	}

	cancel() // as SIGTERM does
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after shutdown: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop within 30s of the signal")
	}
}

func TestRunRefusesShortSecret(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("changeme\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := parseFlags([]string{"--bind-address=127.0.0.1:0", "--s3-endpoint=127.0.0.1:1",
		"--secret-file=" + secretFile}, env(credentials), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := run(t.Context(), o, logr.Discard(), nil); err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Fatalf("run with an 8-byte secret: %v, want a refusal", err)
	}
}

func fetch(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}
