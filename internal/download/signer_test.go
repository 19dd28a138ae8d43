package download

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"
)

var (
	testSecret = []byte("0123456789abcdef0123456789abcdef-test")
	testNow    = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
)

const (
	vendorBase = "https://firmware-download.example-vendor.com"
	// uidKey is the integrator's key shape: fw/<36-char uid>.bin.
	uidKey = "fw/0f8fad5b-d9cb-469f-a165-70867728950e.bin"
)

func TestNewSigner(t *testing.T) {
	tests := []struct {
		name, base string
		secret     []byte
		ttl        time.Duration
		wantErr    string // substring; "" means success
	}{
		{"https", vendorBase, testSecret, 15 * time.Minute, ""},
		{"http with trailing slash", "http://dl.example.com/", testSecret, time.Minute, ""},
		{"ipv4", "http://10.0.0.7", testSecret, time.Minute, ""},
		{"port", "http://h:8080", testSecret, time.Minute, "names port 8080; devices built on the vendor SDK ignore ports"},
		{"default port", "http://h:80", testSecret, time.Minute, "names port 80"},
		{"empty port", "https://h:", testSecret, time.Minute, "names port (empty)"},
		{"userinfo", "https://user:pw@h", testSecret, time.Minute, "user information"},
		{"path", "https://h/firmware", testSecret, time.Minute, "path, query or fragment"},
		{"query", "https://h?x=1", testSecret, time.Minute, "path, query or fragment"},
		{"fragment", "https://h#x", testSecret, time.Minute, "path, query or fragment"},
		{"scheme", "ftp://h", testSecret, time.Minute, "scheme must be http or https"},
		{"no host", "https://", testSecret, time.Minute, "has no host"},
		{"no scheme", "firmware.example.com", testSecret, time.Minute, "scheme must be"},
		{"ipv6", "http://[::1]", testSecret, time.Minute, "no IPv6 literals"},
		{"host too long", "http://" + strings.Repeat("a", 256), testSecret, time.Minute, "256-byte buffer"},
		{"host at the limit", "http://" + strings.Repeat("a", 255), testSecret, time.Minute, ""},
		{"short secret", vendorBase, []byte("short"), time.Minute, "at least 32"},
		{"zero ttl", vendorBase, testSecret, 0, "lifetime"},
		{"ttl too long", vendorBase, testSecret, 8 * 24 * time.Hour, "lifetime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSigner(tt.base, tt.secret, tt.ttl)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("NewSigner(%q) = %v, want success", tt.base, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("NewSigner(%q) = %v, want an error containing %q", tt.base, err, tt.wantErr)
			}
		})
	}
}

func mustSigner(t testing.TB, base string, ttl time.Duration) *Signer {
	t.Helper()
	s, err := NewSigner(base, testSecret, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestURLLength(t *testing.T) {
	s := mustSigner(t, vendorBase, 15*time.Minute)
	u, err := s.URL(uidKey, testNow)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("longest realistic URL, %d bytes: %s", len(u), u)
	if len(u) > 130 {
		t.Errorf("URL is %d bytes, want it well under %d", len(u), MaxURLBytes+1)
	}
	if want := vendorBase + "/f/"; !strings.HasPrefix(u, want) || !strings.HasSuffix(u, "/"+uidKey) {
		t.Errorf("URL %q does not have the form %s<token>/%s", u, want, uidKey)
	}
}

func TestURLKeys(t *testing.T) {
	s := mustSigner(t, vendorBase, 15*time.Minute)
	// The fixed part of a URL: base, "/f/", token and "/".
	fixed := len(vendorBase) + len(pathPrefix) + tokenChars + 1
	longHost := mustSigner(t, "http://"+strings.Repeat("h", 200), time.Minute)
	tests := []struct {
		name    string
		s       *Signer
		key     string
		wantErr string
	}{
		{"uid key", s, uidKey, ""},
		{"nested key", s, "a/b/c-1_2~3.bin", ""},
		{"longest key", s, strings.Repeat("k", MaxURLBytes-fixed), ""},
		{"key one byte too long", s, strings.Repeat("k", MaxURLBytes-fixed+1), "at most 199"},
		{"path too long", longHost, strings.Repeat("k", 230), "devices take at most 255"},
		{"empty", s, "", "empty"},
		{"space", s, "fw/a b.bin", "cannot take unescaped"},
		{"percent", s, "fw/a%20b.bin", "cannot take unescaped"},
		{"query", s, "fw/a.bin?x", "cannot take unescaped"},
		{"leading slash", s, "/fw/a.bin", "segment"},
		{"double slash", s, "fw//a.bin", "segment"},
		{"dot dot", s, "fw/../a.bin", "segment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := tt.s.URL(tt.key, testNow)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("URL(%q) = %v, want success", tt.key, err)
			case tt.wantErr == "" && len(u) > MaxURLBytes:
				t.Fatalf("URL(%q) is %d bytes", tt.key, len(u))
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("URL(%q) = %q, %v; want an error containing %q", tt.key, u, err, tt.wantErr)
			}
		})
	}
}

// pathOf returns the path of a signed URL, which is what a device requests.
func pathOf(t testing.TB, s *Signer, key string, now time.Time) string {
	t.Helper()
	u, err := s.URL(key, now)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u, s.base)
}

func TestExpiryGrid(t *testing.T) {
	s := mustSigner(t, vendorBase, 20*time.Minute) // grid of 5 minutes
	grid := 5 * time.Minute
	start := testNow.Truncate(grid).Add(time.Second)
	first := pathOf(t, s, uidKey, start)
	// Every URL signed within one grid step is byte-identical (CDN mode)...
	if again := pathOf(t, s, uidKey, start.Add(grid-2*time.Second)); again != first {
		t.Errorf("URLs signed in one grid step differ: %q and %q", first, again)
	}
	// ...and the next step gets a new one.
	if next := pathOf(t, s, uidKey, start.Add(grid)); next == first {
		t.Errorf("URL signed a grid step later is the same: %q", next)
	}
	// Valid for at least ttl, at most ttl + grid.
	for _, tc := range []struct {
		at    time.Duration
		valid bool
	}{
		{20 * time.Minute, true},
		{20*time.Minute + grid - 2*time.Second, true},
		{20*time.Minute + grid, false},
	} {
		_, _, err := verifyPath(testSecret, first, start.Add(tc.at-time.Second))
		if (err == nil) != tc.valid {
			t.Errorf("%s after signing: verify = %v, want valid=%v", tc.at, err, tc.valid)
		}
	}
}

func TestVerifyPath(t *testing.T) {
	s := mustSigner(t, vendorBase, 15*time.Minute)
	good := pathOf(t, s, uidKey, testNow)
	token := strings.Split(good, "/")[2]
	raw, _ := base64.RawURLEncoding.DecodeString(token)
	flipped := append([]byte(nil), raw...)
	flipped[len(flipped)-1] ^= 1
	tests := []struct {
		name string
		path string
		now  time.Time
		want error
	}{
		{"good", good, testNow, nil},
		{"expired", good, testNow.Add(time.Hour), errExpired},
		{"other key", pathPrefix + token + "/fw/other.bin", testNow, errForged},
		{"flipped mac bit", pathPrefix + base64.RawURLEncoding.EncodeToString(flipped) + "/" + uidKey, testNow, errForged},
		{"later expiry", pathPrefix + forgedExpiry(raw) + "/" + uidKey, testNow, errForged},
		{"other secret", pathOf(t, otherSecretSigner(t), uidKey, testNow), testNow, errForged},
		{"bad base64", pathPrefix + strings.Repeat("!", tokenChars) + "/" + uidKey, testNow, errForged},
		{"short token", pathPrefix + token[1:] + "/" + uidKey, testNow, errForged},
		{"long token", pathPrefix + token + "A/" + uidKey, testNow, errForged},
		{"no key", pathPrefix + token, testNow, errForged},
		{"wrong prefix", "/g/" + token + "/" + uidKey, testNow, errForged},
		{"empty", "", testNow, errForged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, _, err := verifyPath(testSecret, tt.path, tt.now)
			if err != tt.want {
				t.Fatalf("verifyPath(%q) = %q, %v; want %v", tt.path, key, err, tt.want)
			}
			if err == nil && key != uidKey {
				t.Fatalf("verifyPath returned key %q, want %q", key, uidKey)
			}
		})
	}
}

// forgedExpiry moves a token's expiry 65536 s later and keeps its MAC.
func forgedExpiry(raw []byte) string {
	b := append([]byte(nil), raw...)
	b[1]++
	return base64.RawURLEncoding.EncodeToString(b)
}

func otherSecretSigner(t *testing.T) *Signer {
	s, err := NewSigner(vendorBase, []byte(strings.Repeat("x", 32)), 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParseSecret(t *testing.T) {
	got, err := ParseSecret(append(append([]byte(nil), testSecret...), '\n'))
	if err != nil || string(got) != string(testSecret) {
		t.Fatalf("ParseSecret(secret+newline) = %q, %v; want the secret", got, err)
	}
	if _, err := ParseSecret([]byte(" short \n")); err == nil {
		t.Fatal("ParseSecret accepted a 5-byte secret")
	}
}

// A key's URL is signed once a grid step and kept; the cache stays bounded
// however many keys are signed.
func TestSignerKeepsURLsBounded(t *testing.T) {
	s, err := NewSigner("http://dl.example.com", []byte("0123456789abcdef0123456789abcdef"), 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_010, 0) // 10 s into a grid step of 225 s
	first, err := s.URL("_img/a.bin", now)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := s.URL("_img/a.bin", now.Add(time.Second)); again != first {
		t.Errorf("within a step: %s, then %s", first, again)
	}
	if later, _ := s.URL("_img/a.bin", now.Add(4*time.Minute)); later == first {
		t.Errorf("the next step kept the URL %s", later)
	}
	for i := range maxSigned + 10 {
		if _, err := s.URL(fmt.Sprintf("_img/%d.bin", i), now); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(s.signed); n > maxSigned {
		t.Errorf("%d URLs kept, bound %d", n, maxSigned)
	}
	if _, err := s.URL("bad key", now); err == nil {
		t.Error("a key with a space was signed")
	}
}
