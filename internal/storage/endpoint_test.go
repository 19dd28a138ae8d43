package storage

import (
	"strings"
	"testing"
)

func TestDevicePortWarning(t *testing.T) {
	tests := []struct {
		url  string
		warn bool
	}{
		{"http://fw.example", false},
		{"http://fw.example:80", false},
		{"https://fw.example", false},
		{"https://fw.example:443", false},
		{"http://fw.example:9000", true},
		{"https://fw.example:8443", true},
		{"https://fw.example:80", true},
		{"http://[::1]:9000", true},
	}
	for _, tt := range tests {
		u, err := ParsePublicURL(tt.url)
		if err != nil {
			t.Fatalf("%s: %v", tt.url, err)
		}
		got := DevicePortWarning(u)
		if (got != "") != tt.warn {
			t.Errorf("DevicePortWarning(%s) = %q, want warning %v", tt.url, got, tt.warn)
		}
		if tt.warn && !strings.Contains(got, u.Port()) {
			t.Errorf("warning %q does not name the port", got)
		}
	}
}

func TestParsePublicURLRejects(t *testing.T) {
	for _, raw := range []string{
		"", "fw.example", "ftp://fw.example", "http://", "http://fw.example/prefix",
		"http://u:p@fw.example", "http://fw.example?x=1",
	} {
		if _, err := ParsePublicURL(raw); err == nil {
			t.Errorf("ParsePublicURL(%q) accepted", raw)
		}
	}
}

func TestNewRejectsSmallParts(t *testing.T) {
	if _, err := New(Config{Endpoint: "127.0.0.1:9", PartSize: 1 << 20}); err == nil {
		t.Error("New accepted a 1 MiB part size")
	}
}
