package protocol

import (
	"errors"
	"maps"
	"strings"
	"testing"
)

// samplePush is the push from PROTOCOL.md, with a real-looking digest.
const samplePush = `{
  "code": "1000",
  "message": "success",
  "id": 1626969597470,
  "data": {
    "size": 432945,
    "version": "2.0.0",
    "url": "https://storage.example/fw/a.bin?X-Amz-Expires=900&X-Amz-Signature=abc",
    "md5": "93230c3bde425a9d7ed2b0a2b3e1a8c1",
    "sign": "93230c3bde425a9d7ed2b0a2b3e1a8c1",
    "signMethod": "Md5",
    "module": "MCU",
    "isDiff": 1,
    "extData": { "key1": "value1", "_package_udi": "{\"ota_notice\":\"...\"}" }
  }
}`

func testUpgrade() Upgrade {
	return Upgrade{
		Version:    "2.0.0",
		URL:        "http://127.0.0.1:9000/fw/img.bin?X-Amz-Expires=900&X-Amz-Signature=abc",
		Size:       1024,
		MD5:        "93230c3bde425a9d7ed2b0a2b3e1a8c1",
		SignMethod: SignSHA256,
		Sign:       strings.Repeat("ab", 32),
	}
}

func equalUpgrade(a, b Upgrade) bool {
	return maps.Equal(a.ExtData, b.ExtData) && a.Version == b.Version && a.URL == b.URL && a.Size == b.Size &&
		a.MD5 == b.MD5 && a.SignMethod == b.SignMethod && a.Sign == b.Sign && a.Module == b.Module && a.Diff == b.Diff
}

func TestEncodePush(t *testing.T) {
	u := testUpgrade()
	got, err := EncodePush(1626969597470, u)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"code":"1000","message":"success","id":1626969597470,"data":{"size":1024,"version":"2.0.0",` +
		`"url":"http://127.0.0.1:9000/fw/img.bin?X-Amz-Expires=900&X-Amz-Signature=abc",` +
		`"md5":"93230c3bde425a9d7ed2b0a2b3e1a8c1","sign":"` + strings.Repeat("ab", 32) + `","signMethod":"Sha256"}}`
	if string(got) != want {
		t.Fatalf("EncodePush =\n%s\nwant\n%s", got, want)
	}

	u.Module, u.Diff, u.SignMethod, u.Sign = "MCU", true, SignMD5, u.MD5
	u.ExtData = map[string]string{"key1": "value1", "_package_udi": `{"ota_notice":"<b>&</b>"}`}
	got, err = EncodePush(1, u)
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{`"module":"MCU"`, `"isDiff":1`, `"signMethod":"Md5"`,
		`"extData":{"_package_udi":"{\"ota_notice\":\"<b>&</b>\"}","key1":"value1"}`} {
		if !strings.Contains(string(got), part) {
			t.Errorf("push %s lacks %s", got, part)
		}
	}

	u.Module = DefaultModule
	got, _ = EncodePush(1, u)
	if strings.Contains(string(got), "module") {
		t.Errorf("default module must be omitted: %s", got)
	}
}

func TestUpgradeValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Upgrade)
	}{
		{"bad version", func(u *Upgrade) { u.Version = "2.0 final" }},
		{"bad module", func(u *Upgrade) { u.Module = "a+b" }},
		{"relative url", func(u *Upgrade) { u.URL = "/fw/img.bin" }},
		{"ftp url", func(u *Upgrade) { u.URL = "ftp://host/img.bin" }},
		{"zero size", func(u *Upgrade) { u.Size = 0 }},
		{"upper-case md5", func(u *Upgrade) { u.MD5 = strings.ToUpper(u.MD5) }},
		{"unknown sign method", func(u *Upgrade) { u.SignMethod = "MD5" }},
		{"short sign", func(u *Upgrade) { u.Sign = "abc" }},
		{"md5 sign differs from md5", func(u *Upgrade) { u.SignMethod, u.Sign = SignMD5, strings.Repeat("0", 32) }},
		{"long ext value", func(u *Upgrade) { u.ExtData = map[string]string{"k": strings.Repeat("x", 4097)} }},
	}
	for _, tt := range tests {
		u := testUpgrade()
		tt.edit(&u)
		if _, err := EncodePush(1, u); !errors.Is(err, ErrInvalidUpgrade) {
			t.Errorf("%s: EncodePush error = %v, want ErrInvalidUpgrade", tt.name, err)
		}
	}
}

func TestDecodePush(t *testing.T) {
	id, u, err := DecodePush([]byte(samplePush))
	if err != nil {
		t.Fatal(err)
	}
	if id != 1626969597470 || u.Module != "MCU" || !u.Diff || u.Size != 432945 || u.SignMethod != SignMD5 ||
		u.ExtData["_package_udi"] != `{"ota_notice":"..."}` || !strings.Contains(u.URL, "&X-Amz-Signature") {
		t.Fatalf("DecodePush = %d %+v", id, u)
	}

	// Our own output decodes to what went in, with the default module named.
	in := testUpgrade()
	payload, _ := EncodePush(5, in)
	_, out, err := DecodePush(payload)
	in.Module = DefaultModule
	if err != nil || !equalUpgrade(in, out) {
		t.Fatalf("round trip: %v\n%+v\n%+v", err, in, out)
	}

	// What the C SDK would drop, the simulator drops too.
	for name, p := range map[string]string{
		"message not success": strings.Replace(samplePush, `"success"`, `"ok"`, 1),
		"numeric code":        strings.Replace(samplePush, `"1000"`, `1000`, 1),
		"upper-case method":   strings.Replace(samplePush, `"Md5"`, `"MD5"`, 1),
		"default module sent": strings.Replace(samplePush, `"MCU"`, `"default"`, 1),
		"isDiff 0":            strings.Replace(samplePush, `"isDiff": 1`, `"isDiff": 0`, 1),
		"no data":             `{"code":"1000","message":"success","id":1}`,
		"not JSON":            `{"code":`,
	} {
		if _, _, err := DecodePush([]byte(p)); err == nil {
			t.Errorf("%s: DecodePush accepted it", name)
		}
	}
}

func TestGetReply(t *testing.T) {
	empty, err := EncodeGetReply("123", nil)
	if err != nil || string(empty) != `{"id":"123","code":200,"data":{}}` {
		t.Fatalf("empty reply = %s, %v", empty, err)
	}
	id, u, err := DecodeGetReply(empty)
	if err != nil || id != "123" || u != nil {
		t.Fatalf("DecodeGetReply(empty) = %q %v %v", id, u, err)
	}
	in := testUpgrade()
	in.Module = "wifi"
	full, _ := EncodeGetReply("9", &in)
	if !strings.HasPrefix(string(full), `{"id":"9","code":200,"data":{"size":1024,`) {
		t.Fatalf("reply = %s", full)
	}
	_, u, err = DecodeGetReply(full)
	if err != nil || u == nil || !equalUpgrade(in, *u) {
		t.Fatalf("DecodeGetReply = %+v, %v", u, err)
	}
	if _, _, err := DecodeGetReply([]byte(`{"id":"9","code":"200","data":{}}`)); err == nil {
		t.Fatal("a string code must be refused: the contract says integer 200")
	}
}

func TestRequestReply(t *testing.T) {
	in := testUpgrade()
	reply, err := EncodeRequestReply(77, &in)
	if err != nil {
		t.Fatal(err)
	}
	// The gateway sees its own reply come back and ignores it.
	if _, err := Decode(RequestTopic(pk, dn), reply); !errors.Is(err, ErrOwnReply) {
		t.Fatalf("Decode(own reply) error = %v, want ErrOwnReply", err)
	}
	// The device sees its own request come back and ignores it.
	for _, own := range [][]byte{Request{ID: 3, Version: "1.0"}.Encode(), []byte(`{"id":"3","params":{"version":"1"}}`)} {
		if _, _, err := DecodeRequestReply(own); !errors.Is(err, ErrNotReply) {
			t.Fatalf("DecodeRequestReply(%s) error = %v, want ErrNotReply", own, err)
		}
	}
	id, u, err := DecodeRequestReply(reply)
	in.Module = DefaultModule
	if err != nil || id != 77 || u == nil || !equalUpgrade(in, *u) {
		t.Fatalf("DecodeRequestReply = %d %+v %v", id, u, err)
	}
	if !strings.Contains(string(reply), `"url"`) {
		t.Fatal("older SDKs only act on a reply containing \"url\"")
	}
}

// The exact bytes of a full push, as both SDK generations read it: compact,
// extData last in data (4.x takes the first "key": it finds anywhere, and
// extData values are free text), nothing escaped in url, size as digits.
func TestPushBytesForFieldSDKs(t *testing.T) {
	u := Upgrade{
		Version: "2.0.0", URL: "https://dl.example.com/f/AbC-_012/fw/0b7c.bin?a=1&b=<2>", Size: 432945,
		MD5: "93230c3bde425a9d7ed2b0a2b3e1a8c1", SignMethod: SignMD5, Sign: "93230c3bde425a9d7ed2b0a2b3e1a8c1",
		Module: "MCU", Diff: true,
		ExtData: map[string]string{"url": "http://evil", "_package_udi": `{"n":"&"}`},
	}
	got, err := EncodePush(7, u)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"code":"1000","message":"success","id":7,"data":{"size":432945,"version":"2.0.0",` +
		`"url":"https://dl.example.com/f/AbC-_012/fw/0b7c.bin?a=1&b=<2>",` +
		`"md5":"93230c3bde425a9d7ed2b0a2b3e1a8c1","sign":"93230c3bde425a9d7ed2b0a2b3e1a8c1","signMethod":"Md5",` +
		`"module":"MCU","isDiff":1,"extData":{"_package_udi":"{\"n\":\"&\"}","url":"http://evil"}}}`
	if string(got) != want {
		t.Fatalf("EncodePush =\n%s\nwant\n%s", got, want)
	}
	reply, err := EncodeGetReply("12", &u)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(reply), `{"id":"12","code":200,"data":{"size":432945,`) || !strings.HasSuffix(string(reply), `"url":"http://evil"}}}`) {
		t.Fatalf("get reply %s", reply)
	}
}
