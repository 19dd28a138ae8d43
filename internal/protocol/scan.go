package protocol

import (
	"bytes"
	"encoding/json"
)

// scanner walks a JSON document that json.Valid has accepted. Knowing the
// input is well formed keeps it small: it never has to diagnose syntax, only
// to find the few keys the protocol defines and skip everything else. It
// still checks bounds everywhere (ok turns false) so that a bug here can
// refuse a message but never panic on device input.
type scanner struct {
	data []byte
	pos  int
	ok   bool
}

func newScanner(data []byte) scanner { return scanner{data: data, ok: true} }

func (s *scanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (s *scanner) peek() byte {
	s.skipSpace()
	if s.pos >= len(s.data) {
		s.ok = false
		return 0
	}
	return s.data[s.pos]
}

// enterObject consumes '{' and reports whether the value was an object.
func (s *scanner) enterObject() bool {
	if s.peek() != '{' {
		return false
	}
	s.pos++
	return true
}

// nextKey returns the next member's key of the object being walked, or
// ok=false at its closing brace (which it consumes). A key containing escape
// sequences is unescaped, which allocates; real devices never send one.
func (s *scanner) nextKey() (key []byte, more bool) {
	switch s.peek() {
	case '}':
		s.pos++
		return nil, false
	case ',':
		s.pos++
	}
	if s.peek() != '"' {
		s.ok = false
		return nil, false
	}
	raw, escaped := s.readString()
	if escaped {
		raw = unescape(raw)
	}
	if s.peek() != ':' {
		s.ok = false
		return nil, false
	}
	s.pos++
	return raw, s.ok
}

// readString consumes a string token and returns its contents without the
// quotes, and whether it contains escape sequences.
func (s *scanner) readString() (raw []byte, escaped bool) {
	start := s.pos + 1
	for i := start; i < len(s.data); i++ {
		switch s.data[i] {
		case '\\':
			escaped = true
			i++ // the escaped byte can be '"'; \uXXXX needs no special case.
		case '"':
			s.pos = i + 1
			return s.data[start:i], escaped
		}
	}
	s.ok = false
	return nil, false
}

// readScalar consumes a number or literal (true, false, null).
func (s *scanner) readScalar() []byte {
	start := s.pos
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return s.data[start:s.pos]
		}
		s.pos++
	}
	return s.data[start:s.pos]
}

// skipValue consumes one value of any type, however deeply nested. It counts
// brackets instead of recursing, so depth costs no stack.
func (s *scanner) skipValue() {
	depth := 0
	for {
		switch s.peek() {
		case '"':
			s.readString()
		case '{', '[':
			s.pos++
			depth++
		case '}', ']':
			s.pos++
			depth--
		case ',', ':':
			if depth == 0 {
				return
			}
			s.pos++
			continue
		case 0:
			return
		default:
			s.readScalar()
		}
		if depth <= 0 || !s.ok {
			if depth < 0 {
				s.ok = false
			}
			return
		}
	}
}

// value is one scalar the protocol cares about.
type value struct {
	kind    byte // '"' string, '0' number, 'n' null, 'o' object or array, 'b' boolean
	raw     []byte
	escaped bool
}

// readValue consumes the next value; objects and arrays are skipped and
// reported as kind 'o'.
func (s *scanner) readValue() value {
	switch c := s.peek(); {
	case c == '"':
		raw, esc := s.readString()
		return value{kind: '"', raw: raw, escaped: esc}
	case c == '{' || c == '[':
		s.skipValue()
		return value{kind: 'o'}
	case c == 'n':
		s.readScalar()
		return value{kind: 'n'}
	case c == 't' || c == 'f':
		s.readScalar()
		return value{kind: 'b'}
	default:
		return value{kind: '0', raw: s.readScalar()}
	}
}

// text returns a string value's text, unescaped.
func (v value) text() []byte {
	if v.escaped {
		return unescape(v.raw)
	}
	return v.raw
}

// unescape decodes the contents of a JSON string that contains escapes. It
// leans on encoding/json for the rare escaped case rather than duplicating
// its \u and surrogate handling.
func unescape(raw []byte) []byte {
	quoted := make([]byte, 0, len(raw)+2)
	quoted = append(append(append(quoted, '"'), raw...), '"')
	var s string
	if err := json.Unmarshal(quoted, &s); err != nil {
		return raw // cannot happen for input json.Valid accepted
	}
	return []byte(s)
}

// integer parses an optionally negative decimal integer of at most maxDigits
// digits, refusing signs, fractions, exponents and spaces.
func integer(b []byte, maxDigits int) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > maxDigits {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

var (
	keyID      = []byte("id")
	keyParams  = []byte("params")
	keyData    = []byte("data")
	keyVersion = []byte("version")
	keyModule  = []byte("module")
	keyStep    = []byte("step")
	keyDesc    = []byte("desc")
)

func keyIs(key, want []byte) bool { return bytes.Equal(key, want) }
