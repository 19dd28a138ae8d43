package storage

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func TestSanitize(t *testing.T) {
	signed := "http://minio.example:9000/fw/a.bin?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20260101&X-Amz-Signature=deadbeef"
	tests := []struct {
		name    string
		err     error
		secrets []string
		want    string
		absent  []string
	}{
		{name: "nil", err: nil, want: ""},
		{
			name:   "pre-signed URL in url.Error",
			err:    &url.Error{Op: "Get", URL: signed, Err: errors.New("connection refused")},
			want:   `Get "http://minio.example:9000/fw/a.bin?[redacted]": connection refused`,
			absent: []string{"deadbeef", "AKIA"},
		},
		{
			name:   "user info",
			err:    errors.New("fetching https://user:pass@images.example/fw.bin failed"),
			want:   "fetching https://images.example/fw.bin failed",
			absent: []string{"pass"},
		},
		{
			name:    "secret in text",
			err:     fmt.Errorf("auth failed for key s3cr3t-value"),
			secrets: []string{"s3cr3t-value", ""},
			want:    "auth failed for key [redacted]",
		},
		{
			name:   "bare signature parameter",
			err:    errors.New("server said X-Amz-Signature=abc123&x=1"),
			want:   "server said X-Amz-Signature=[redacted]&x=1",
			absent: []string{"abc123"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Sanitize(tt.err, tt.secrets...)
			if got != tt.want {
				t.Errorf("Sanitize = %q, want %q", got, tt.want)
			}
			for _, a := range tt.absent {
				if strings.Contains(got, a) {
					t.Errorf("Sanitize = %q still contains %q", got, a)
				}
			}
		})
	}
}

func TestSanitizeBoundsLength(t *testing.T) {
	got := Sanitize(errors.New(strings.Repeat("x", 5000)))
	if len(got) > maxMessage+3 {
		t.Errorf("length %d exceeds %d", len(got), maxMessage+3)
	}
}
