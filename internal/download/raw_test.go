package download

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRawWire checks the bytes on the wire the way the vendor SDK reads
// them: a status line starting "HTTP/1.1 ", header lines under 127
// characters, "Content-Length: N" spelled exactly and equal to the body, and
// no chunked encoding. Go's client would hide all of that.
func TestRawWire(t *testing.T) {
	st, bucket := newStore(t)
	image := randomImage(6, 300<<10)
	upload(t, st, bucket, uidKey, image)
	h := newHarness(t, Config{Bucket: bucket, Objects: st, CacheControl: true})
	path := pathOf(t, h.signer, uidKey, time.Now())
	addr := strings.TrimPrefix(h.http.URL, "http://")

	tests := []struct {
		name, rangeLine, status string
		body                    []byte
	}{
		{"whole", "", "HTTP/1.1 200 OK", image},
		{"from zero", "Range: bytes=0-\r\n", "HTTP/1.1 206 Partial Content", image},
		{"resume", "Range: bytes=100000-\r\n", "HTTP/1.1 206 Partial Content", image[100000:]},
		{"closed range", "Range: bytes=5-104\r\n", "HTTP/1.1 206 Partial Content", image[5:105]},
		{"past the end", "Range: bytes=999999-\r\n", "HTTP/1.1 416 Requested Range Not Satisfiable", []byte("range not satisfiable\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := "GET " + path + " HTTP/1.1\r\nHost: firmware.test\r\n" + tt.rangeLine + "\r\n"
			status, headers, body := rawRequest(t, addr, req)
			if status != tt.status {
				t.Fatalf("status line %q, want %q", status, tt.status)
			}
			if !bytes.Equal(body, tt.body) {
				t.Fatalf("body of %d bytes differs from the %d expected", len(body), len(tt.body))
			}
			if got := headers["Content-Length"]; got != strconv.Itoa(len(tt.body)) {
				t.Fatalf("Content-Length %q, want %d", got, len(tt.body))
			}
		})
	}
	t.Run("forged", func(t *testing.T) {
		status, _, body := rawRequest(t, addr, "GET /f/"+strings.Repeat("A", tokenChars)+"/x HTTP/1.1\r\nHost: firmware.test\r\n\r\n")
		if status != "HTTP/1.1 403 Forbidden" || string(body) != "forbidden\n" {
			t.Fatalf("answer %q %q, want 403 forbidden", status, body)
		}
	})
}

// rawRequest sends req on a new connection, as the SDK does for every
// request, and returns the status line, the headers by exact name and the
// body read by Content-Length. It fails the test on any header line the
// devices would refuse.
func rawRequest(t *testing.T, addr, req string) (string, map[string]string, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	status := readLine(t, r)
	headers := map[string]string{}
	for {
		line := readLine(t, r)
		if line == "" {
			break
		}
		t.Logf("header line (%d chars): %s", len(line), line)
		if len(line) >= 127 {
			t.Errorf("header line of %d characters; devices take at most 126: %q", len(line), line)
		}
		name, value, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("header line %q is not \"Name: value\"", line)
		}
		headers[name] = value
	}
	if te, ok := headers["Transfer-Encoding"]; ok {
		t.Fatalf("Transfer-Encoding: %s; devices reject it", te)
	}
	n, err := strconv.Atoi(headers["Content-Length"])
	if err != nil {
		t.Fatalf("no exact \"Content-Length: N\" header: %v", err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatalf("reading %d body bytes: %v", n, err)
	}
	return status, headers, body
}

func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading a header line: %v", err)
	}
	if !strings.HasSuffix(line, "\r\n") {
		t.Fatalf("line %q does not end in CRLF", line)
	}
	return strings.TrimSuffix(line, "\r\n")
}
