package devicesim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/otafleet/otafleet/internal/protocol"
)

// scanPush4 reads an upgrade push as LinkSDK 4.x does: for each key it
// takes the first `"key":` anywhere in the payload, wants the value right
// after the colon (no whitespace) and does not unescape strings. It then
// checks that what it read is what the payload's data object says: when
// the naive reading differs (extData placed before a key it repeats, a
// space after a colon, an escaped URL) the device would act on something
// the operator did not mean, so the push counts as unreadable.
func scanPush4(payload []byte) (protocol.Upgrade, error) {
	var u protocol.Upgrade
	var err error
	if u.Version, err = naiveString(payload, "version"); err != nil {
		return u, err
	}
	if u.URL, err = naiveString(payload, "url"); err != nil {
		return u, err
	}
	if u.Sign, err = naiveString(payload, "sign"); err != nil {
		return u, err
	}
	method, err := naiveString(payload, "signMethod")
	if err != nil {
		return u, err
	}
	if u.Size, err = naiveSize(payload); err != nil {
		return u, err
	}
	if u.Module, err = naiveString(payload, "module"); err != nil && !errors.Is(err, errNoKey) {
		return u, err
	}
	if err := checkNaive(method, &u); err != nil {
		return u, err
	}
	if err := sameAsJSON(payload, method, u); err != nil {
		return u, err
	}
	if u.Module == "" {
		u.Module = protocol.DefaultModule
	}
	return u, nil
}

var errNoKey = errors.New("key not found")

// naiveValue returns what follows the first `"key":` in payload.
func naiveValue(payload []byte, key string) ([]byte, error) {
	i := bytes.Index(payload, []byte(`"`+key+`":`))
	if i < 0 {
		return nil, fmt.Errorf("%s: %w", key, errNoKey)
	}
	return payload[i+len(key)+3:], nil
}

// naiveString reads a string value up to the next quote, refusing
// backslashes: the device would keep them verbatim.
func naiveString(payload []byte, key string) (string, error) {
	rest, err := naiveValue(payload, key)
	if err != nil {
		return "", err
	}
	if len(rest) == 0 || rest[0] != '"' {
		return "", fmt.Errorf("%s: not a string right after the colon", key)
	}
	end := bytes.IndexByte(rest[1:], '"')
	if end < 0 {
		return "", fmt.Errorf("%s: unterminated string", key)
	}
	s := rest[1 : 1+end]
	if bytes.IndexByte(s, '\\') >= 0 {
		return "", fmt.Errorf("%s: escaped characters are not unescaped by the device", key)
	}
	return string(s), nil
}

// naiveSize reads size as plain digits.
func naiveSize(payload []byte) (int64, error) {
	rest, err := naiveValue(payload, "size")
	if err != nil {
		return 0, err
	}
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	if n == 0 || n > 12 {
		return 0, errors.New("size: not plain digits right after the colon")
	}
	size, _ := strconv.ParseInt(string(rest[:n]), 10, 64) // at most 12 digits
	return size, nil
}

// checkNaive applies the device's own checks and fills the digests.
func checkNaive(method string, u *protocol.Upgrade) error {
	switch method {
	case "Md5":
		u.SignMethod = protocol.SignMD5
	case "Sha256", "SHA256":
		u.SignMethod = protocol.SignSHA256
	default:
		return fmt.Errorf("signMethod %q: want Md5, Sha256 or SHA256", method)
	}
	if (len(u.Sign) != 32 && len(u.Sign) != 64) || strings.Trim(strings.ToLower(u.Sign), "0123456789abcdef") != "" {
		return errors.New("sign: want 32 or 64 hex characters")
	}
	u.Sign = strings.ToLower(u.Sign)
	if u.SignMethod == protocol.SignMD5 {
		u.MD5 = u.Sign // 4.x reads no md5 field
	}
	if u.Version == "" || u.URL == "" {
		return errors.New("version and url must not be empty")
	}
	return nil
}

// sameAsJSON checks the naive reading against the data object.
func sameAsJSON(payload []byte, method string, u protocol.Upgrade) error {
	var push struct {
		Data map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(payload, &push); err != nil || push.Data == nil {
		return errors.New("not a JSON object with a data object")
	}
	want := map[string]string{"version": u.Version, "url": u.URL, "sign": u.Sign, "signMethod": method}
	if u.Module != "" {
		want["module"] = u.Module
	} else if _, ok := push.Data["module"]; ok {
		return errors.New("module: data has one the device did not read")
	}
	for key, naive := range want {
		var s string
		err := json.Unmarshal(push.Data[key], &s)
		if key == "sign" {
			s = strings.ToLower(s) // naive reading lower-cased it: hex compares case-insensitively
		}
		if err != nil || s != naive {
			return fmt.Errorf("%s: the device reads %q, data says %s", key, naive, push.Data[key])
		}
	}
	if string(push.Data["size"]) != strconv.FormatInt(u.Size, 10) {
		return fmt.Errorf("size: the device reads %d, data says %s", u.Size, push.Data["size"])
	}
	return nil
}
