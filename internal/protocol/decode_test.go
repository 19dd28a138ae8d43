package protocol

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

const (
	pk = "a1TSu2F29co"
	dn = "dev-000001"
)

func TestDecode(t *testing.T) {
	inform, progress, get, request := InformTopic(pk, dn), ProgressTopic(pk, dn), FirmwareGetTopic(pk, dn), RequestTopic(pk, dn)
	base := Message{ProductKey: pk, DeviceName: dn, Module: DefaultModule}
	with := func(f func(*Message)) Message { m := base; f(&m); return m }
	longDesc := strings.Repeat("é", 200)

	tests := []struct {
		name    string
		topic   string
		payload string
		want    Message
		wantErr error
	}{
		// Payloads as real devices send them.
		{"C SDK inform with numeric id", inform, `{"id":3,"params":{"version":"app-1.0.0-20191107142256"}}`,
			with(func(m *Message) { m.Kind, m.ID, m.Version = KindInform, "3", "app-1.0.0-20191107142256" }), nil},
		{"documented inform with module", inform, `{ "id": "123", "params": { "version": "1.0.1", "module": "MCU" } }`,
			with(func(m *Message) { m.Kind, m.ID, m.Version, m.Module = KindInform, "123", "1.0.1", "MCU" }), nil},
		{"C SDK first progress", progress, `{"id":0,"params":{"step":"0","desc":"Enter in downloading state"}}`,
			with(func(m *Message) { m.Kind, m.ID, m.Step, m.Desc = KindProgress, "0", 0, "Enter in downloading state" }), nil},
		{"C SDK download failure", progress, `{"id":3,"params":{"step":"-2","desc":"..."}}`,
			with(func(m *Message) { m.Kind, m.ID, m.Step, m.Desc = KindProgress, "3", StepDownloadFailed, "..." }), nil},
		{"documented progress", progress, `{ "id": "123", "params": { "step": "-1", "desc": "download failed: 404", "module": "MCU" } }`,
			with(func(m *Message) {
				m.Kind, m.ID, m.Step, m.Desc, m.Module = KindProgress, "123", StepFailed, "download failed: 404", "MCU"
			}), nil},
		{"step as number", progress, `{"id":"7","params":{"step":55}}`,
			with(func(m *Message) { m.Kind, m.ID, m.Step = KindProgress, "7", 55 }), nil},
		{"step 100", progress, `{"id":"7","params":{"step":"100"}}`,
			with(func(m *Message) { m.Kind, m.ID, m.Step = KindProgress, "7", 100 }), nil},
		{"step -4", progress, `{"id":"8","params":{"step":-4}}`,
			with(func(m *Message) { m.Kind, m.ID, m.Step = KindProgress, "8", StepFlashFailed }), nil},
		{"firmware get", get, `{"id":"123","version":"1.0","params":{"module":"MCU"},"method":"thing.ota.firmware.get"}`,
			with(func(m *Message) { m.Kind, m.ID, m.Module = KindFirmwareGet, "123", "MCU" }), nil},
		{"firmware get without params", get, `{"id":"9","version":"1.0","method":"thing.ota.firmware.get"}`,
			with(func(m *Message) { m.Kind, m.ID = KindFirmwareGet, "9" }), nil},
		{"older request", request, `{"id":4,"params":{"version":"app-1.0.0"}}`,
			with(func(m *Message) { m.Kind, m.ID, m.Version = KindRequest, "4", "app-1.0.0" }), nil},
		{"own reply on request topic", request,
			`{"code":"1000","message":"success","id":1,"data":{"size":1,"version":"2","url":"http://x/y","md5":"00000000000000000000000000000000","sign":"00000000000000000000000000000000","signMethod":"Md5"}}`,
			Message{}, ErrOwnReply},

		// Liberal acceptance.
		{"module empty means default", inform, `{"id":"1","params":{"version":"1","module":""}}`,
			with(func(m *Message) { m.Kind, m.ID, m.Version = KindInform, "1", "1" }), nil},
		{"module null means default", inform, `{"id":"1","params":{"version":"1","module":null}}`,
			with(func(m *Message) { m.Kind, m.ID, m.Version = KindInform, "1", "1" }), nil},
		{"unknown and nested fields ignored", inform,
			`{"sys":{"ack":0,"x":[1,{"a":[[]]},"}"]},"id":"2","params":{"extra":{"k":"v"},"version":"v2"},"method":"m"}`,
			with(func(m *Message) { m.Kind, m.ID, m.Version = KindInform, "2", "v2" }), nil},
		{"escaped strings", progress, `{"id":"1","params":{"st\u0065p":"5","desc":"a\"b\n\u00e9"}}`,
			with(func(m *Message) { m.Kind, m.ID, m.Step, m.Desc = KindProgress, "1", 5, "a\"b\né" }), nil},
		{"last duplicate key wins", inform, `{"id":"1","params":{"version":"x"},"params":{"version":"y"}}`,
			with(func(m *Message) { m.Kind, m.ID, m.Version = KindInform, "1", "y" }), nil},
		{"description truncated to 128 characters", progress, `{"id":"5","params":{"step":"1","desc":"` + longDesc + `"}}`,
			with(func(m *Message) {
				m.Kind, m.ID, m.Step, m.Desc = KindProgress, "5", 1, strings.Repeat("é", MaxDescLen)
			}), nil},
		{"invalid UTF-8 in description replaced", progress, "{\"id\":5,\"params\":{\"step\":\"1\",\"desc\":\"a\xffb\"}}",
			with(func(m *Message) { m.Kind, m.ID, m.Step, m.Desc = KindProgress, "5", 1, "a\uFFFDb" }), nil},
		{"non-string description ignored", progress, `{"id":"5","params":{"step":"1","desc":{"x":1}}}`,
			with(func(m *Message) { m.Kind, m.ID, m.Step = KindProgress, "5", 1 }), nil},

		// Refusals.
		{"payload too large", inform, `{"params":{"version":"1"},"pad":"` + strings.Repeat("x", MaxDevicePayload) + `"}`, Message{}, ErrTooLarge},
		{"truncated JSON", inform, `{"id":3,"params":{"version":"1"`, Message{}, ErrInvalidJSON},
		{"trailing garbage", inform, `{"params":{"version":"1"}} x`, Message{}, ErrInvalidJSON},
		{"empty payload", inform, ``, Message{}, ErrInvalidJSON},
		{"array payload", inform, `[{"params":{"version":"1"}}]`, Message{}, ErrInvalidSchema},
		{"params not an object", inform, `{"params":"1.0"}`, Message{}, ErrInvalidSchema},
		{"inform without params", inform, `{"id":"1"}`, Message{}, ErrInvalidSchema},
		{"progress without params", progress, `{"id":"1","step":"1"}`, Message{}, ErrInvalidSchema},
		{"missing version", inform, `{"params":{}}`, Message{}, ErrInvalidVersion},
		{"version with space", inform, `{"params":{"version":"1.0 beta"}}`, Message{}, ErrInvalidVersion},
		{"version empty", inform, `{"params":{"version":""}}`, Message{}, ErrInvalidVersion},
		{"version too long", inform, `{"params":{"version":"` + strings.Repeat("1", 65) + `"}}`, Message{}, ErrInvalidVersion},
		{"version as number", inform, `{"params":{"version":1.0}}`, Message{}, ErrInvalidVersion},
		{"bad version in request", request, `{"params":{"version":"a/b"}}`, Message{}, ErrInvalidVersion},
		{"module with slash", inform, `{"params":{"version":"1","module":"a/b"}}`, Message{}, ErrInvalidModule},
		{"module as number", get, `{"params":{"module":5}}`, Message{}, ErrInvalidModule},
		{"step above 100", progress, `{"params":{"step":"101"}}`, Message{}, ErrInvalidStep},
		{"step below -4", progress, `{"params":{"step":"-5"}}`, Message{}, ErrInvalidStep},
		{"step fraction", progress, `{"params":{"step":5.5}}`, Message{}, ErrInvalidStep},
		{"step text", progress, `{"params":{"step":"abc"}}`, Message{}, ErrInvalidStep},
		{"step with plus", progress, `{"params":{"step":"+5"}}`, Message{}, ErrInvalidStep},
		{"step missing", progress, `{"params":{"desc":"x"}}`, Message{}, ErrInvalidStep},
		{"step boolean", progress, `{"params":{"step":true}}`, Message{}, ErrInvalidStep},
		{"negative id", inform, `{"id":-1,"params":{"version":"1"}}`, Message{}, ErrInvalidID},
		{"fractional id", inform, `{"id":1.5,"params":{"version":"1"}}`, Message{}, ErrInvalidID},
		{"boolean id", inform, `{"id":true,"params":{"version":"1"}}`, Message{}, ErrInvalidID},
		{"id with space", inform, `{"id":"1 2","params":{"version":"1"}}`, Message{}, ErrInvalidID},

		// Topics.
		{"empty device name", "/ota/device/inform/" + pk + "/", `{"params":{"version":"1"}}`, Message{}, ErrInvalidTopic},
		{"wildcard in product key", "/ota/device/inform/+/" + dn, `{"params":{"version":"1"}}`, Message{}, ErrInvalidTopic},
		{"hash in device name", "/ota/device/inform/" + pk + "/a#", `{"params":{"version":"1"}}`, Message{}, ErrInvalidTopic},
		{"extra level", "/ota/device/inform/" + pk + "/a/b", `{"params":{"version":"1"}}`, Message{}, ErrInvalidTopic},
		{"unknown ota topic", "/ota/device/other/" + pk + "/" + dn, `{}`, Message{}, ErrUnknownTopic},
		{"deviceinfo update", "/sys/" + pk + "/" + dn + "/thing/deviceinfo/update", `{}`, Message{}, ErrUnknownTopic},
		{"cloud topic", UpgradeTopic(pk, dn), `{}`, Message{}, ErrUnknownTopic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.topic, []byte(tt.payload))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Decode error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got != tt.want {
				t.Fatalf("Decode =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestDecodeErrorReasons(t *testing.T) {
	_, err := Decode(ProgressTopic(pk, dn), []byte(`{"params":{"step":"200"}}`))
	if got := ReasonOf(err); got != ReasonInvalidStep {
		t.Fatalf("ReasonOf = %q, want %q (err %v)", got, ReasonInvalidStep, err)
	}
	if !strings.Contains(err.Error(), `"200"`) {
		t.Fatalf("error %q does not quote the offending value", err)
	}
	_, err = Decode(InformTopic(pk, dn), []byte(`{"params":{"version":"`+strings.Repeat("x", 1000)+`!"}}`))
	if len(err.Error()) > 200 {
		t.Fatalf("error detail is not bounded: %d bytes", len(err.Error()))
	}
	if ReasonOf(errors.New("other")) != "" || ReasonOf(ErrOwnReply) != "" {
		t.Fatal("ReasonOf must be empty for non-protocol errors")
	}
}

func TestDeviceEncodersRoundTrip(t *testing.T) {
	tests := []struct {
		topic   string
		payload []byte
		want    Message
	}{
		{InformTopic(pk, dn), Inform{ID: 3, NumericID: true, Version: "1.0.0"}.Encode(),
			Message{Kind: KindInform, ID: "3", Module: DefaultModule, Version: "1.0.0"}},
		{InformTopic(pk, dn), Inform{ID: 4, Module: "mcu", Version: "2.0"}.Encode(),
			Message{Kind: KindInform, ID: "4", Module: "mcu", Version: "2.0"}},
		{ProgressTopic(pk, dn), Progress{ID: 0, NumericID: true, Step: 0, Desc: "Enter in downloading state"}.Encode(),
			Message{Kind: KindProgress, ID: "0", Module: DefaultModule, Desc: "Enter in downloading state"}},
		{ProgressTopic(pk, dn), Progress{ID: 5, Module: "wifi", Step: -3, Desc: `sha256 "mismatch"`}.Encode(),
			Message{Kind: KindProgress, ID: "5", Module: "wifi", Step: -3, Desc: `sha256 "mismatch"`}},
		{FirmwareGetTopic(pk, dn), GetRequest{ID: 6, Module: "mcu"}.Encode(),
			Message{Kind: KindFirmwareGet, ID: "6", Module: "mcu"}},
		{RequestTopic(pk, dn), Request{ID: 7, Version: "1.0"}.Encode(),
			Message{Kind: KindRequest, ID: "7", Module: DefaultModule, Version: "1.0"}},
	}
	for _, tt := range tests {
		got, err := Decode(tt.topic, tt.payload)
		if err != nil {
			t.Fatalf("Decode(%s): %v", tt.payload, err)
		}
		tt.want.ProductKey, tt.want.DeviceName = pk, dn
		if got != tt.want {
			t.Errorf("Decode(%s) =\n%+v\nwant\n%+v", tt.payload, got, tt.want)
		}
	}
	if got := string(Progress{ID: 0, NumericID: true, Desc: "Enter in downloading state"}.Encode()); got !=
		`{"id":0,"params":{"step":"0","desc":"Enter in downloading state"}}` {
		t.Errorf("first progress = %s, want the C SDK's exact payload", got)
	}
}

// TestDecodeAllocations keeps the hot path cheap: a progress report costs
// its id and description strings, nothing more.
func TestDecodeAllocations(t *testing.T) {
	topic := ProgressTopic(pk, dn)
	payload := []byte(`{"id":"1234","params":{"step":"42","desc":"downloading","module":"default"}}`)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := Decode(topic, payload); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 2 {
		t.Fatalf("Decode of a progress report allocates %.0f times, want <= 2", allocs)
	}
	garbage := []byte(`{"id":`)
	allocs = testing.AllocsPerRun(200, func() { _, _ = Decode(topic, garbage) })
	// json.Valid builds one SyntaxError; the refusal itself is a sentinel.
	if allocs > 1 {
		t.Fatalf("refusing invalid JSON allocates %.0f times, want <= 1", allocs)
	}
}

func TestDescTruncationKeepsRunes(t *testing.T) {
	in := strings.Repeat("a", 127) + "日本"
	got := descText(value{kind: '"', raw: []byte(in)})
	if utf8.RuneCountInString(got) != MaxDescLen || !strings.HasSuffix(got, "日") {
		t.Fatalf("descText = %q", got)
	}
}

func BenchmarkDecodeProgress(b *testing.B) {
	topic := ProgressTopic(pk, dn)
	payload := []byte(`{"id":"1234","params":{"step":"42","desc":"downloading","module":"default"}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := Decode(topic, payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeInform(b *testing.B) {
	topic := InformTopic(pk, dn)
	payload := []byte(`{"id":3,"params":{"version":"app-1.0.0-20191107142256"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(topic, payload); err != nil {
			b.Fatal(err)
		}
	}
}
