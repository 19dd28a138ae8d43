package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// Seeds shared by the decoder fuzz targets: real payloads and near misses.
var payloadSeeds = []string{
	`{"id":3,"params":{"version":"app-1.0.0-20191107142256"}}`,
	`{"id":0,"params":{"step":"0","desc":"Enter in downloading state"}}`,
	`{"id":3,"params":{"step":"-2","desc":"..."}}`,
	`{ "id": "123", "params": { "version": "1.0.1", "module": "MCU" } }`,
	`{ "id": "123", "params": { "step": "-1", "desc": "download failed: 404", "module": "MCU" } }`,
	`{"id":"123","version":"1.0","params":{"module":"MCU"},"method":"thing.ota.firmware.get"}`,
	`{"code":"1000","message":"success","id":1,"data":{}}`,
	`{"id":"1","params":{"st\u0065p":55,"desc":"\ud800x"}}`,
	`{"params":null,"params":{"version":"v"},"id":-0}`,
	`{"id":"1","params":{"version":"1","module":"default"},"x":[{"y":[1,2,{"z":"}"}]}]}`,
	"{\"params\":{\"step\":\"1\",\"desc\":\"a\xffb\"}}",
	`[]`, `"x"`, `{`, ``, `null`, `{"id":1e3}`,
	// ids at and around the edges of the rule
	`{"id":4294967295,"params":{"version":"1","step":"1"}}`,
	`{"id":"4294967296","params":{"version":"1","step":"1"}}`,
	`{"id":"abc","params":{"version":"1","step":"1"}}`,
	`{"id":"","params":{"version":"1","step":"1"}}`,
	`{"id":99999999999,"params":{"version":"1","step":"1"}}`,
	`{"id":"\u0039","params":{"version":"1","step":"1"}}`,
	`{"params":{"version":"1","step":"1"}}`,
}

// FuzzDecode checks Decode against a reference built on encoding/json: both
// must accept the same payloads and agree on every field. The reference is
// slow and allocation-heavy but obviously right, which is the point.
func FuzzDecode(f *testing.F) {
	for _, s := range payloadSeeds {
		for k := KindInform; k <= KindRequest; k++ {
			f.Add(uint8(k), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, k uint8, payload []byte) {
		kind := Kind(k%4) + KindInform
		topic := map[Kind]string{
			KindInform: InformTopic(pk, dn), KindProgress: ProgressTopic(pk, dn),
			KindFirmwareGet: FirmwareGetTopic(pk, dn), KindRequest: RequestTopic(pk, dn),
		}[kind]
		got, err := Decode(topic, payload)
		want, wantErr := referenceDecode(kind, payload)
		switch {
		case wantErr != nil && err == nil:
			t.Fatalf("Decode accepted %q as %+v; reference refuses: %v", payload, got, wantErr)
		case wantErr == nil && err != nil:
			t.Fatalf("Decode refused %q: %v; reference accepts %+v", payload, err, want)
		case errors.Is(wantErr, ErrOwnReply) != errors.Is(err, ErrOwnReply):
			t.Fatalf("own-reply detection differs for %q: %v vs %v", payload, err, wantErr)
		case err == nil:
			want.ProductKey, want.DeviceName = pk, dn
			if got != want {
				t.Fatalf("Decode(%q) =\n%+v\nreference\n%+v", payload, got, want)
			}
		}
		if err != nil && !errors.Is(err, ErrOwnReply) && ReasonOf(err) == "" {
			t.Fatalf("Decode error %v is not a protocol *Error", err)
		}
	})
}

var (
	idRE   = regexp.MustCompile(`^[0-9]{1,10}$`)
	stepRE = regexp.MustCompile(`^-?[0-9]{1,3}$`)
	nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
)

func referenceDecode(kind Kind, payload []byte) (Message, error) {
	fail := errors.New("refused")
	if len(payload) > MaxDevicePayload || !json.Valid(payload) {
		return Message{}, fail
	}
	var top map[string]any
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	if err := d.Decode(&top); err != nil || top == nil {
		return Message{}, fail
	}
	m := Message{Kind: kind, Module: DefaultModule}
	var params map[string]any
	switch p := top["params"].(type) {
	case nil:
	case map[string]any:
		params = p
	default:
		return Message{}, fail
	}
	if _, ok := top["data"]; ok && kind == KindRequest {
		return Message{}, ErrOwnReply
	}
	if top["id"] == nil {
		return Message{}, fail // missing or null
	}
	var id string
	switch v := top["id"].(type) {
	case json.Number:
		id = string(v)
	case string:
		id = v
	default:
		return Message{}, fail
	}
	if n, err := strconv.ParseUint(id, 10, 64); !idRE.MatchString(id) || err != nil || n > MaxID {
		return Message{}, fail
	}
	m.ID = id
	switch mod := params["module"].(type) {
	case nil:
	case string:
		if mod != "" && mod != DefaultModule {
			if !nameRE.MatchString(mod) {
				return Message{}, fail
			}
			m.Module = mod
		}
	default:
		return Message{}, fail
	}
	version, isString := params["version"].(string)
	switch kind {
	case KindInform:
		if params == nil || !isString || !nameRE.MatchString(version) {
			return Message{}, fail
		}
		m.Version = version
	case KindRequest:
		if params["version"] != nil && (!isString || !nameRE.MatchString(version)) {
			return Message{}, fail
		}
		m.Version = version
	case KindProgress:
		if params == nil {
			return Message{}, fail
		}
		var text string
		switch s := params["step"].(type) {
		case string:
			text = s
		case json.Number:
			text = string(s)
		default:
			return Message{}, fail
		}
		if !stepRE.MatchString(text) {
			return Message{}, fail
		}
		n := 0
		for _, c := range strings.TrimPrefix(text, "-") {
			n = n*10 + int(c-'0')
		}
		if strings.HasPrefix(text, "-") {
			n = -n
		}
		if n < -4 || n > 100 {
			return Message{}, fail
		}
		m.Step = Step(n)
		if desc, ok := params["desc"].(string); ok {
			if r := []rune(desc); len(r) > MaxDescLen {
				desc = string(r[:MaxDescLen])
			}
			m.Desc = desc
		}
	}
	return m, nil
}

// FuzzParseTopic checks that a parsed topic rebuilds to itself and that
// nothing invalid slips through as a segment.
func FuzzParseTopic(f *testing.F) {
	for _, s := range []string{
		InformTopic(pk, dn), ProgressTopic(pk, dn), UpgradeTopic(pk, dn), RequestTopic(pk, dn),
		FirmwareGetTopic(pk, dn), FirmwareGetReplyTopic(pk, dn), "/sys/thing/ota/firmware/get",
		"/sys//thing/ota/firmware/get_reply", "/ota/device/inform/+/#", "/ota/device/inform/a/b/c", "",
	} {
		f.Add(s)
	}
	build := map[Kind]func(string, string) string{
		KindInform: InformTopic, KindProgress: ProgressTopic, KindUpgrade: UpgradeTopic,
		KindRequest: RequestTopic, KindFirmwareGet: FirmwareGetTopic, KindFirmwareGetReply: FirmwareGetReplyTopic,
	}
	f.Fuzz(func(t *testing.T, topic string) {
		kind, p, d, err := ParseTopic(topic)
		if err != nil {
			return
		}
		if !ValidSegment(p) || !ValidSegment(d) || strings.ContainsAny(p+d, "/+#") || !utf8.ValidString(p+d) {
			t.Fatalf("ParseTopic(%q) returned invalid segments %q, %q", topic, p, d)
		}
		if got := build[kind](p, d); got != topic {
			t.Fatalf("ParseTopic(%q) = %v %q %q, which rebuilds to %q", topic, kind, p, d, got)
		}
	})
}

// FuzzDecodePush checks that the device-side push decoder never panics and
// that whatever it accepts survives a round trip through EncodePush.
func FuzzDecodePush(f *testing.F) {
	good, _ := EncodePush(1626969597470, testUpgrade())
	f.Add(good)
	f.Add([]byte(samplePush))
	for _, s := range payloadSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		id, u, err := DecodePush(payload)
		if err != nil {
			return
		}
		again, err := EncodePush(id, u)
		if err != nil {
			t.Fatalf("accepted push does not re-encode: %v", err)
		}
		id2, u2, err := DecodePush(again)
		if err != nil || id2 != id || !equalUpgrade(u, u2) {
			t.Fatalf("round trip changed the push: %v\n%+v\n%+v", err, u, u2)
		}
	})
}

// FuzzDecodeGetReply is FuzzDecodePush for the firmware/get reply.
func FuzzDecodeGetReply(f *testing.F) {
	u := testUpgrade()
	full, _ := EncodeGetReply("123", &u)
	empty, _ := EncodeGetReply("123", nil)
	f.Add(full)
	f.Add(empty)
	for _, s := range payloadSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		id, u, err := DecodeGetReply(payload)
		if err != nil {
			return
		}
		again, err := EncodeGetReply(id, u)
		if err != nil {
			t.Fatalf("accepted reply does not re-encode: %v", err)
		}
		id2, u2, err := DecodeGetReply(again)
		if err != nil || id2 != id || (u == nil) != (u2 == nil) || (u != nil && !equalUpgrade(*u, *u2)) {
			t.Fatalf("round trip changed the reply: %v", err)
		}
	})
}

// FuzzDecodeRequestReply is FuzzDecodePush for the older request topic,
// which also carries the device's own requests.
func FuzzDecodeRequestReply(f *testing.F) {
	u := testUpgrade()
	full, _ := EncodeRequestReply(7, &u)
	f.Add(full)
	f.Add(Request{ID: 3, Version: "1.0"}.Encode())
	for _, s := range payloadSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		id, u, err := DecodeRequestReply(payload)
		if err != nil {
			return
		}
		again, err := EncodeRequestReply(id, u)
		if err != nil {
			t.Fatalf("accepted reply does not re-encode: %v", err)
		}
		if _, err := Decode(RequestTopic(pk, dn), again); !errors.Is(err, ErrOwnReply) {
			t.Fatalf("the gateway would not recognise this reply as its own: %v", err)
		}
	})
}
