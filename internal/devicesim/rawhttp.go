package devicesim

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// The strict profiles speak HTTP/1.1 over a bare connection, as the
// devices' own minimal clients do, so that the wire is checked as a device
// sees it: net/http would forgive a redirect, a chunked body, a misspelt
// header or an over-long line.

// deviceURL is a download URL cut up the way the device SDKs cut it.
type deviceURL struct {
	scheme string
	host   string // everything between "://" and the first "/"
	target string // everything from the first "/", query included
}

// maxURLPart is the size of the SDKs' host and path buffers: a part of this
// length or more does not fit with its terminating zero.
const maxURLPart = 256

// parseDeviceURL splits raw as the SDKs do. Its errors are violations,
// except for a scheme the devices do not speak at all.
func parseDeviceURL(raw string) (deviceURL, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || (scheme != "http" && scheme != "https") {
		return deviceURL{}, fmt.Errorf("url %.64q: not http:// or https://", raw)
	}
	u := deviceURL{scheme: scheme, host: rest, target: "/"}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		u.host, u.target = rest[:i], rest[i:]
	}
	if len(u.host) >= maxURLPart || len(u.target) >= maxURLPart {
		return u, violationf(ViolationURLTooLong, "host of %d bytes, path and query of %d bytes (limit %d)",
			len(u.host), len(u.target), maxURLPart-1)
	}
	if u.host == "" || strings.ContainsAny(u.host, ":@?#") {
		return u, violationf(ViolationURLHost, "host name %q does not resolve: no port or userinfo in a device URL", u.host)
	}
	return u, nil
}

// dialAddr is where the device connects: the scheme's default port of the
// host, whatever the URL says, through Config.Hosts when it names the host.
func (c *Config) dialAddr(u deviceURL) string {
	if addr, ok := c.Hosts[u.host]; ok {
		return addr
	}
	port := "80"
	if u.scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(u.host, port)
}

// rawRequest is one GET as a device sends it.
type rawRequest struct {
	addr    string
	tls     *tls.Config // nil for http
	url     deviceURL
	rng     string // Range header value; "" for none
	maxLine int    // longest header line the device takes; 0 for no limit
}

// rawResponse is a response head as the device reads it, and its body.
type rawResponse struct {
	statusLine    string
	status        int
	contentLength int64 // -1 when there is no "Content-Length: " line
	chunked       bool
	body          *bufio.Reader
	conn          net.Conn
	stop          func() bool
}

func (r *rawResponse) close() {
	r.stop()
	_ = r.conn.Close()
}

// rawIOTimeout bounds one request, as the devices' own timeouts do.
const rawIOTimeout = 10 * time.Minute

// rawGet opens a new connection, sends one request and reads the head.
func rawGet(ctx context.Context, req rawRequest) (*rawResponse, error) {
	d := net.Dialer{Timeout: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", req.addr)
	if err != nil {
		return nil, err
	}
	if req.tls != nil {
		cfg := req.tls.Clone()
		cfg.ServerName = req.url.host
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			return nil, err
		}
		conn = tc
	}
	_ = conn.SetDeadline(time.Now().Add(rawIOTimeout))
	// A stopping fleet unblocks reads at once.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	resp := &rawResponse{conn: conn, stop: stop, contentLength: -1, body: bufio.NewReaderSize(conn, 4096)}
	head := "GET " + req.url.target + " HTTP/1.1\r\nHost: " + req.url.host + "\r\n"
	if req.rng != "" {
		head += "Range: " + req.rng + "\r\n"
	}
	head += "Connection: close\r\n\r\n"
	if _, err := conn.Write([]byte(head)); err != nil {
		resp.close()
		return nil, err
	}
	if err := resp.readHead(req.maxLine); err != nil {
		resp.close()
		return nil, err
	}
	return resp, nil
}

// readHead reads the status line and the headers the devices look at.
func (r *rawResponse) readHead(maxLine int) error {
	for first := true; ; first = false {
		raw, err := r.body.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if maxLine > 0 {
				return violationf(ViolationLongHeader, "a response header line over 4096 bytes (limit %d)", maxLine)
			}
			return errors.New("response header line longer than 4096 bytes")
		}
		if err != nil {
			return fmt.Errorf("reading the response head: %w", err)
		}
		line := strings.TrimRight(string(raw), "\r\n")
		if maxLine > 0 && len(line) > maxLine {
			return violationf(ViolationLongHeader, "a response header line of %d characters (limit %d): %.40q...",
				len(line), maxLine, line)
		}
		if first {
			if err := r.parseStatus(line); err != nil {
				return err
			}
			continue
		}
		if line == "" {
			return nil
		}
		if err := r.parseHeader(line); err != nil {
			return err
		}
	}
}

func (r *rawResponse) parseStatus(line string) error {
	r.statusLine = line
	_, rest, ok := strings.Cut(line, " ")
	if len(rest) < 3 {
		ok = false
	}
	code, err := strconv.Atoi(rest[:min(3, len(rest))])
	if !ok || err != nil || !strings.HasPrefix(line, "HTTP/") {
		return fmt.Errorf("bad status line %.64q", line)
	}
	r.status = code
	return nil
}

func (r *rawResponse) parseHeader(line string) error {
	name, value, _ := strings.Cut(line, ":")
	switch {
	case strings.HasPrefix(line, "Content-Length: "):
		n, err := strconv.ParseInt(strings.TrimPrefix(line, "Content-Length: "), 10, 64)
		if err != nil || n < 0 {
			return violationf(ViolationContentLength, "unreadable %.64q", line)
		}
		r.contentLength = n
	case strings.EqualFold(name, "Content-Length"):
		return violationf(ViolationContentLength, "%.64q: the device wants exactly \"Content-Length: N\"", line)
	case strings.EqualFold(name, "Transfer-Encoding") && strings.Contains(strings.ToLower(value), "chunked"):
		r.chunked = true
	}
	return nil
}
