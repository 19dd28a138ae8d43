package storage

import (
	"bytes"
	"crypto/md5" //nolint:gosec // compared against, not used for security
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestCopyAndHashKnownVectors(t *testing.T) {
	tests := []struct {
		in       string
		md5, sha string
	}{
		{"", "d41d8cd98f00b204e9800998ecf8427e", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"abc", "900150983cd24fb0d6963f7d28e17f72", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		got, err := CopyAndHash(&out, strings.NewReader(tt.in))
		if err != nil {
			t.Fatal(err)
		}
		want := Digests{Size: int64(len(tt.in)), MD5: tt.md5, SHA256: tt.sha}
		if got != want {
			t.Errorf("CopyAndHash(%q) = %+v, want %+v", tt.in, got, want)
		}
		if out.String() != tt.in {
			t.Errorf("copied %q, want %q", out.String(), tt.in)
		}
	}
}

// TestHashingReaderMatchesOneShot checks the streaming digests against
// digests of the whole buffer, with reads of one byte at a time so that
// every chunk boundary is exercised.
func TestHashingReaderMatchesOneShot(t *testing.T) {
	data, err := io.ReadAll(imageReader(7, 1<<20+13))
	if err != nil {
		t.Fatal(err)
	}
	m, s := md5.Sum(data), sha256.Sum256(data) //nolint:gosec // see import
	want := Digests{Size: int64(len(data)), MD5: hex.EncodeToString(m[:]), SHA256: hex.EncodeToString(s[:])}

	got, err := CopyAndHash(io.Discard, iotest.HalfReader(bytes.NewReader(data)))
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("streaming %+v, one-shot %+v", got, want)
	}
}

func TestCopyAndHashReportsReadError(t *testing.T) {
	_, err := CopyAndHash(io.Discard, iotest.TimeoutReader(strings.NewReader(strings.Repeat("x", 64<<10))))
	if err == nil {
		t.Error("read error was swallowed")
	}
}
