package testserver

import (
	"errors"
	"net"
	"net/http"
	"os"
	"testing"
)

func TestStartMinIOAndStop(t *testing.T) {
	m, err := StartMinIO(t.Context(), MinIOOptions{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(m.URL + "/minio/health/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("readiness: %s", resp.Status)
	}
	if m.AccessKey == "" || len(m.SecretKey) < 8 {
		t.Errorf("credentials %q/%q are not usable", m.AccessKey, m.SecretKey)
	}
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(m.DataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data directory %s survived Stop: %v", m.DataDir, err)
	}
	if c, err := net.Dial("tcp", m.Endpoint); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Stop", m.Endpoint)
	}
	if err := m.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}
