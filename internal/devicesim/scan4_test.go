package devicesim

import (
	"strings"
	"testing"

	"github.com/otafleet/otafleet/internal/protocol"
)

const (
	md5Hex    = "93230c3bde425a9d7ed2b0a2b3e1a8c1"
	sha256Hex = "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
)

// push4 builds a push around a data object written by hand.
func push4(data string) []byte {
	return []byte(`{"code":"1000","message":"success","id":1626969597470,"data":{` + data + `}}`)
}

func TestScanPush4(t *testing.T) {
	good := `"size":432945,"version":"2.0.0","url":"https://dl.example.com/f/4JqK?a=1&b=2","md5":"` + md5Hex +
		`","sign":"` + md5Hex + `","signMethod":"Md5"`
	for _, c := range []struct {
		name    string
		payload []byte
		ok      bool
		module  string
	}{
		{"compact, as EncodePush writes it", push4(good), true, protocol.DefaultModule},
		{"module and extData last", push4(good + `,"module":"MCU","extData":{"url":"x","k":"v"}`), true, "MCU"},
		{"sha256 upper case method", push4(`"size":1,"version":"2","url":"http://h/x","sign":"` + sha256Hex + `","signMethod":"SHA256"`), true, protocol.DefaultModule},
		{"extData with url before the url", push4(`"extData":{"url":"http://other/y"},` + good), false, ""},
		{"extData with module, no module in data", push4(good + `,"extData":{"module":"MCU"}`), false, ""},
		{"space after a colon", push4(strings.Replace(good, `"url":"`, `"url": "`, 1)), false, ""},
		{"escaped slashes in url", push4(strings.Replace(good, `https://`, `https:\/\/`, 1)), false, ""},
		{"escaped ampersand in url", push4(strings.Replace(good, `&`, `\u0026`, 1)), false, ""},
		{"size as a string", push4(strings.Replace(good, `432945`, `"432945"`, 1)), false, ""},
		{"negative size", push4(strings.Replace(good, `432945`, `-4`, 1)), false, ""},
		{"signMethod MD5", push4(strings.Replace(good, `"Md5"`, `"MD5"`, 1)), false, ""},
		{"short sign", push4(strings.Replace(good, `"sign":"`+md5Hex, `"sign":"abc`, 1)), false, ""},
		{"no sign", push4(strings.Replace(good, `,"sign":"`+md5Hex+`"`, ``, 1)), false, ""},
		{"no url", push4(strings.Replace(good, `"url":"https://dl.example.com/f/4JqK?a=1&b=2",`, ``, 1)), false, ""},
		{"not JSON", []byte(`"size":1,"version":"2","url":"http://h/x","sign":"` + md5Hex + `","signMethod":"Md5"`), false, ""},
		{"empty", nil, false, ""},
	} {
		u, err := scanPush4(c.payload)
		if (err == nil) != c.ok {
			t.Errorf("%s: err = %v, want ok %v", c.name, err, c.ok)
			continue
		}
		if c.ok && u.Module != c.module {
			t.Errorf("%s: module %q, want %q", c.name, u.Module, c.module)
		}
	}
}

// TestScanPush4ReadsEncodePush: what the operator sends is what 4.x reads.
func TestScanPush4ReadsEncodePush(t *testing.T) {
	in := protocol.Upgrade{Version: "2.0.0", URL: "https://dl.example.com/f/x?X-Amz-Expires=900&X-Amz-Signature=ab",
		Size: 42, MD5: md5Hex, SignMethod: protocol.SignSHA256, Sign: sha256Hex, Module: "MCU",
		ExtData: map[string]string{"url": "http://x/y", "_package_udi": `{"ota_notice":"a \"url\": b"}`}}
	payload, err := protocol.EncodePush(1, in)
	if err != nil {
		t.Fatal(err)
	}
	u, err := scanPush4(payload)
	if err != nil {
		t.Fatalf("%v\n%s", err, payload)
	}
	if u.Version != in.Version || u.URL != in.URL || u.Size != in.Size || u.Sign != in.Sign ||
		u.SignMethod != in.SignMethod || u.Module != in.Module {
		t.Fatalf("read %+v from %s", u, payload)
	}
}

func FuzzScanPush4(f *testing.F) {
	f.Add(push4(`"size":1,"version":"2","url":"http://h/x","sign":"` + md5Hex + `","signMethod":"Md5"`))
	f.Add(push4(`"extData":{"url":"x"},"size":1,"version":"2","url":"http://h/x","sign":"` + md5Hex + `","signMethod":"Md5"`))
	f.Add([]byte(`{"data":{"size":01,"version":"\u0032","url":"a","sign":"` + sha256Hex + `","signMethod":"SHA256"}}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		u, err := scanPush4(payload)
		if err != nil {
			return
		}
		// Whatever it accepts, a device can act on.
		if u.Version == "" || u.URL == "" || strings.ContainsAny(u.URL, `\"`) || u.Size < 0 || u.Module == "" {
			t.Fatalf("accepted %+v from %q", u, payload)
		}
		if n := len(u.Sign); (n != 32 && n != 64) || strings.Trim(u.Sign, "0123456789abcdef") != "" {
			t.Fatalf("accepted sign %q", u.Sign)
		}
		if u.SignMethod != protocol.SignMD5 && u.SignMethod != protocol.SignSHA256 {
			t.Fatalf("accepted sign method %q", u.SignMethod)
		}
		if (u.SignMethod == protocol.SignMD5) != (u.MD5 == u.Sign) {
			t.Fatalf("md5 %q with sign %q and method %s", u.MD5, u.Sign, u.SignMethod)
		}
	})
}
