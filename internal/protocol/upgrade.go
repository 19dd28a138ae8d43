package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"unicode/utf8"
)

// Upgrade is what a device needs to fetch and check one image: the data
// object of an upgrade push and of a firmware/get reply.
type Upgrade struct {
	// Version is the image's version; the device informs it once flashed.
	Version string
	// URL is a pre-signed, time-limited download URL.
	URL string
	// Size is the image size in bytes.
	Size int64
	// MD5 is the image's MD5 in lower-case hex, sent always because older
	// SDKs read it whatever the sign method.
	MD5 string
	// SignMethod names the digest in Sign.
	SignMethod SignMethod
	// Sign is the image's digest by SignMethod, lower-case hex.
	Sign string
	// Module is the module the image is for; "" or DefaultModule is the
	// default module, which is omitted on the wire.
	Module string
	// Diff marks a differential package (isDiff: 1); full images omit isDiff.
	Diff bool
	// ExtData carries the campaign's tags and the package's free text
	// (_package_udi) as string key/values.
	ExtData map[string]string
}

// Limits on ExtData, so that a push stays small enough for device buffers.
const (
	maxExtDataEntries = 64
	maxExtDataKey     = 128
	maxExtDataValue   = 4096 // characters; the platform's limit for _package_udi
)

// Validate checks an upgrade before it is sent to a device.
func (u *Upgrade) Validate() error {
	bad := func(detail string) error { return newError(ReasonInvalidUpgrade, detail) }
	if !ValidName(u.Version) {
		return bad("version must be 1..64 of [A-Za-z0-9._-]")
	}
	if u.Module != "" && !ValidName(u.Module) {
		return bad("module must be 1..64 of [A-Za-z0-9._-]")
	}
	if p, err := url.Parse(u.URL); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return bad("url must be an absolute http or https URL")
	}
	if u.Size <= 0 {
		return bad("size must be positive")
	}
	if !lowerHex(u.MD5, 32) {
		return bad("md5 must be 32 lower-case hex digits")
	}
	n := u.SignMethod.digestLen()
	if n == 0 {
		return bad("signMethod must be Md5 or Sha256")
	}
	if !lowerHex(u.Sign, n) {
		return bad("sign must be the lower-case hex digest named by signMethod")
	}
	if u.SignMethod == SignMD5 && u.Sign != u.MD5 {
		return bad("sign and md5 differ although signMethod is Md5")
	}
	if len(u.ExtData) > maxExtDataEntries {
		return bad("extData has too many entries")
	}
	for k, v := range u.ExtData {
		if k == "" || len(k) > maxExtDataKey || utf8.RuneCountInString(v) > maxExtDataValue {
			return bad("extData key or value too long")
		}
	}
	return nil
}

func lowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// upgradeWire is the data object exactly as devices read it.
type upgradeWire struct {
	Size       int64             `json:"size"`
	Version    string            `json:"version"`
	URL        string            `json:"url"`
	MD5        string            `json:"md5"`
	Sign       string            `json:"sign"`
	SignMethod string            `json:"signMethod"`
	Module     string            `json:"module,omitempty"`
	IsDiff     int               `json:"isDiff,omitempty"`
	ExtData    map[string]string `json:"extData,omitempty"`
}

func (u *Upgrade) wire() *upgradeWire {
	w := &upgradeWire{
		Size: u.Size, Version: u.Version, URL: u.URL, MD5: u.MD5,
		Sign: u.Sign, SignMethod: string(u.SignMethod), ExtData: u.ExtData,
	}
	if u.Module != DefaultModule {
		w.Module = u.Module
	}
	if u.Diff {
		w.IsDiff = 1
	}
	return w
}

// pushWire is the upgrade push and the reply on the older request topic.
type pushWire struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	ID      int64  `json:"id"`
	Data    any    `json:"data"`
}

// getReplyWire is the firmware/get reply: note the integer code.
type getReplyWire struct {
	ID   string `json:"id"`
	Code int    `json:"code"`
	Data any    `json:"data"`
}

// Codes the vendor's SDKs compare with.
const (
	pushCode     = "1000"
	pushMessage  = "success"
	getReplyCode = 200
)

// EncodePush returns the payload of an upgrade push. id is the push's
// message id (the platform uses a millisecond timestamp).
func EncodePush(id int64, u Upgrade) ([]byte, error) {
	if err := u.Validate(); err != nil {
		return nil, err
	}
	return marshal(pushWire{Code: pushCode, Message: pushMessage, ID: id, Data: u.wire()})
}

// EncodeGetReply returns the firmware/get reply for request id; u nil means
// nothing is pending for that module ("data": {}).
func EncodeGetReply(id string, u *Upgrade) ([]byte, error) {
	data, err := replyData(u)
	if err != nil {
		return nil, err
	}
	return marshal(getReplyWire{ID: id, Code: getReplyCode, Data: data})
}

// EncodeRequestReply returns the reply on the older request topic. Those
// SDKs hand a reply containing a URL to the same code as an upgrade push, so
// it has the push's shape; u nil means nothing is pending.
func EncodeRequestReply(id int64, u *Upgrade) ([]byte, error) {
	data, err := replyData(u)
	if err != nil {
		return nil, err
	}
	return marshal(pushWire{Code: pushCode, Message: pushMessage, ID: id, Data: data})
}

func replyData(u *Upgrade) (any, error) {
	if u == nil {
		return struct{}{}, nil
	}
	if err := u.Validate(); err != nil {
		return nil, err
	}
	return u.wire(), nil
}

// marshal encodes without HTML escaping: pre-signed URLs are full of '&',
// and the device SDKs' minimal JSON parsers do not decode \u0026.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// MaxCloudPayload bounds what the device-side decoders accept; a push with a
// full _package_udi stays well under it.
const MaxCloudPayload = 64 << 10

// ErrNotReply is returned by DecodeRequestReply for the device's own request
// seen on the request topic it subscribes to.
var ErrNotReply = errors.New("protocol: not a reply")

// rawUpgrade decodes the data object strictly, the way the C SDK reads it.
type rawUpgrade struct {
	Size       *int64            `json:"size"`
	Version    string            `json:"version"`
	URL        string            `json:"url"`
	MD5        string            `json:"md5"`
	Sign       string            `json:"sign"`
	SignMethod string            `json:"signMethod"`
	Module     *string           `json:"module"`
	IsDiff     *int              `json:"isDiff"`
	ExtData    map[string]string `json:"extData"`
}

func (r *rawUpgrade) upgrade() (Upgrade, error) {
	bad := func(detail string) (Upgrade, error) { return Upgrade{}, newError(ReasonInvalidUpgrade, detail) }
	u := Upgrade{Version: r.Version, URL: r.URL, MD5: r.MD5, Sign: r.Sign,
		SignMethod: SignMethod(r.SignMethod), ExtData: r.ExtData}
	if r.Size == nil {
		return bad("missing size")
	}
	u.Size = *r.Size
	if r.Module != nil {
		// The contract omits module for the default module; a device SDK
		// would look for a module literally named "default".
		if *r.Module == "" || *r.Module == DefaultModule {
			return bad("module must be omitted for the default module")
		}
		u.Module = *r.Module
	}
	if r.IsDiff != nil {
		if *r.IsDiff != 1 {
			return bad("isDiff must be 1 or omitted")
		}
		u.Diff = true
	}
	if err := u.Validate(); err != nil {
		return Upgrade{}, err
	}
	if u.Module == "" {
		u.Module = DefaultModule
	}
	return u, nil
}

// DecodePush decodes an upgrade push as a device built on the vendor's C SDK
// reads it: code "1000", message "success", exact signMethod spelling.
func DecodePush(payload []byte) (id int64, u Upgrade, err error) {
	var w struct {
		Code    string      `json:"code"`
		Message string      `json:"message"`
		ID      int64       `json:"id"`
		Data    *rawUpgrade `json:"data"`
	}
	if err := decodeCloud(payload, &w); err != nil {
		return 0, Upgrade{}, err
	}
	if w.Code != pushCode || w.Message != pushMessage {
		return 0, Upgrade{}, newError(ReasonInvalidUpgrade, `push needs code "1000" and message "success"`)
	}
	if w.Data == nil {
		return 0, Upgrade{}, newError(ReasonInvalidUpgrade, "push without data")
	}
	u, err = w.Data.upgrade()
	return w.ID, u, err
}

// DecodeGetReply decodes a firmware/get reply; u is nil when nothing is
// pending.
func DecodeGetReply(payload []byte) (id string, u *Upgrade, err error) {
	var w struct {
		ID   string          `json:"id"`
		Code int             `json:"code"`
		Data json.RawMessage `json:"data"`
	}
	if err := decodeCloud(payload, &w); err != nil {
		return "", nil, err
	}
	if w.Code != getReplyCode {
		return "", nil, newError(ReasonInvalidUpgrade, "get reply needs the integer code 200")
	}
	u, err = optionalUpgrade(w.Data)
	return w.ID, u, err
}

// DecodeRequestReply decodes the backend's reply on the older request topic;
// it returns ErrNotReply for the device's own request echoed by the broker.
func DecodeRequestReply(payload []byte) (id int64, u *Upgrade, err error) {
	var w struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		ID      int64           `json:"id"`
		Data    json.RawMessage `json:"data"`
	}
	if err := decodeCloud(payload, &w); err != nil {
		// A device's own request may carry a string id, which the reply
		// struct cannot hold; tell it apart before reporting an error.
		if !bytes.Contains(payload, []byte(`"data"`)) {
			return 0, nil, ErrNotReply
		}
		return 0, nil, err
	}
	if w.Data == nil {
		return 0, nil, ErrNotReply
	}
	if w.Code != pushCode || w.Message != pushMessage {
		return 0, nil, newError(ReasonInvalidUpgrade, `reply needs code "1000" and message "success"`)
	}
	u, err = optionalUpgrade(w.Data)
	return w.ID, u, err
}

func optionalUpgrade(data json.RawMessage) (*Upgrade, error) {
	var r rawUpgrade
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, newError(ReasonInvalidSchema, "data is not an upgrade object")
	}
	if r.URL == "" && r.Version == "" && r.Size == nil {
		return nil, nil // "data": {}
	}
	u, err := r.upgrade()
	if err != nil {
		return nil, err
	}
	return &u, nil
}

func decodeCloud(payload []byte, v any) error {
	if len(payload) > MaxCloudPayload {
		return ErrTooLarge
	}
	if !json.Valid(payload) {
		return ErrInvalidJSON
	}
	if err := json.Unmarshal(payload, v); err != nil {
		return newError(ReasonInvalidSchema, err.Error())
	}
	return nil
}
