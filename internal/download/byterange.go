package download

import (
	"strconv"
	"strings"
)

// rangeSpec is one parsed "bytes=" range before the object's size is
// known: first-last inclusive, last < 0 for "to the end"; suffix means the
// final `last` bytes ("bytes=-N").
type rangeSpec struct {
	first, last int64
	suffix      bool
}

// parseRange reads a Range header. It returns ok=false for no header, for
// several ranges and for anything malformed: RFC 9110 (14.2) lets a server
// ignore Range, and answering 200 with the whole image is what the vendor
// SDK copes with best. Devices only ever send one "bytes=S-" or "bytes=S-E".
// The parser is ours rather than http.ServeContent's because that one
// answers multipart/byteranges, which devices cannot read.
func parseRange(header string) (rangeSpec, bool) {
	unit, spec, ok := strings.Cut(header, "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") || strings.Contains(spec, ",") {
		return rangeSpec{}, false
	}
	firstText, lastText, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return rangeSpec{}, false
	}
	if firstText == "" {
		n, ok := parseDigits(lastText)
		return rangeSpec{last: n, suffix: true}, ok && n > 0
	}
	first, ok := parseDigits(firstText)
	if !ok {
		return rangeSpec{}, false
	}
	if lastText == "" {
		return rangeSpec{first: first, last: -1}, true
	}
	last, ok := parseDigits(lastText)
	return rangeSpec{first: first, last: last}, ok && last >= first
}

// parseDigits accepts only ASCII digits: ParseInt alone would take a sign.
func parseDigits(s string) (int64, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// length is how many bytes to ask the store for, from first: -1 means to
// the end. A suffix needs the size first (see resolve).
func (r rangeSpec) length() int64 {
	if r.last < 0 {
		return -1
	}
	return r.last - r.first + 1
}

// resolve places the range in an object of size bytes and returns its start
// and length; ok=false means unsatisfiable (416). The end is clamped to the
// object, as RFC 9110 asks.
func (r rangeSpec) resolve(size int64) (start, n int64, ok bool) {
	if r.suffix {
		n = min(r.last, size)
		return size - n, n, n > 0
	}
	if r.first >= size {
		return 0, 0, false
	}
	last := size - 1
	if r.last >= 0 {
		last = min(r.last, last)
	}
	return r.first, last - r.first + 1, true
}
