package mqttpacket

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

func TestAppendConnect(t *testing.T) {
	for _, tc := range []struct {
		name               string
		o                  ConnectOptions
		wantUser, wantPass bool
	}{
		{"bare", ConnectOptions{ClientID: "dev-000001", CleanSession: true, KeepAlive: 60}, false, false},
		{"user and password", ConnectOptions{ClientID: "c", Username: "dev&pk", Password: "s3cret", KeepAlive: 1}, true, true},
		{"password without user is not sent", ConnectOptions{ClientID: "c", Password: "s3cret"}, false, false},
		{"empty client id", ConnectOptions{CleanSession: true}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := AppendConnect(nil, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			pk, err := mochiDecode(raw)
			if err != nil {
				t.Fatalf("Mochi cannot decode % x: %v", raw, err)
			}
			c := pk.Connect
			if code := pk.ConnectValidate(); code != packets.CodeSuccess {
				t.Fatalf("Mochi refuses the CONNECT: %v", code)
			}
			if string(c.ProtocolName) != "MQTT" || pk.ProtocolVersion != 4 || c.ClientIdentifier != tc.o.ClientID ||
				c.Clean != tc.o.CleanSession || c.Keepalive != tc.o.KeepAlive || c.WillFlag ||
				c.UsernameFlag != tc.wantUser || c.PasswordFlag != tc.wantPass {
				t.Fatalf("decoded %+v from %+v", c, tc.o)
			}
			if tc.wantUser && (string(c.Username) != tc.o.Username || string(c.Password) != tc.o.Password) {
				t.Fatalf("credentials %q/%q, want %q/%q", c.Username, c.Password, tc.o.Username, tc.o.Password)
			}
		})
	}
	if _, err := AppendConnect(nil, ConnectOptions{ClientID: strings.Repeat("x", 1<<16)}); !errors.Is(err, ErrTooLong) {
		t.Fatalf("a client id of 65,536 bytes: %v, want ErrTooLong", err)
	}
}

func TestAppendPublish(t *testing.T) {
	big := bytes.Repeat([]byte{0xab}, 200_000) // a remaining length of three bytes
	for _, tc := range []struct {
		topic   string
		payload []byte
		qos     byte
		id      uint16
	}{
		{"/ota/device/progress/pk/dev-000001", []byte(`{"id":1,"params":{"step":"0"}}`), 1, 1},
		{"a", nil, 0, 0},
		{"t/é", big, 1, 65535},
		{"", []byte("x"), 2, 7}, // an empty topic is the broker's to refuse, not the encoder's
	} {
		raw, err := AppendPublish([]byte("prefix"), tc.topic, tc.payload, tc.qos, tc.id)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(raw, []byte("prefix")) {
			t.Fatal("AppendPublish must append")
		}
		pk, err := mochiDecode(raw[len("prefix"):])
		if err != nil {
			t.Fatalf("Mochi cannot decode the PUBLISH of %q: %v", tc.topic, err)
		}
		wantID := tc.id
		if tc.qos == 0 {
			wantID = 0
		}
		if pk.TopicName != tc.topic || !bytes.Equal(pk.Payload, tc.payload) || pk.FixedHeader.Qos != tc.qos ||
			pk.PacketID != wantID || pk.FixedHeader.Dup || pk.FixedHeader.Retain {
			t.Fatalf("decoded topic %q qos %d id %d, %d payload bytes; want %q qos %d id %d, %d bytes",
				pk.TopicName, pk.FixedHeader.Qos, pk.PacketID, len(pk.Payload), tc.topic, tc.qos, wantID, len(tc.payload))
		}
	}
	for _, bad := range []struct {
		qos byte
		id  uint16
	}{{1, 0}, {3, 1}} {
		if _, err := AppendPublish(nil, "t", nil, bad.qos, bad.id); err == nil {
			t.Errorf("QoS %d id %d: no error", bad.qos, bad.id)
		}
	}
}

func TestAppendSubscribe(t *testing.T) {
	filters := []string{"/ota/device/upgrade/pk/+", "/sys/pk/dev-1/thing/ota/firmware/get_reply"}
	for i := range 3000 { // a SUBSCRIBE of thousands of filters, as a multiplexed connection sends
		filters = append(filters, "/ota/device/upgrade/pk/dev-"+strings.Repeat("0", i%7))
	}
	raw, err := AppendSubscribe(nil, 42, filters, 1)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := mochiDecode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if code := pk.SubscribeValidate(); code != packets.CodeSuccess {
		t.Fatalf("Mochi refuses the SUBSCRIBE: %v", code)
	}
	var got []string
	for _, f := range pk.Filters {
		if f.Qos != 1 {
			t.Fatalf("filter %q at QoS %d", f.Filter, f.Qos)
		}
		got = append(got, f.Filter)
	}
	if pk.PacketID != 42 || !slices.Equal(got, filters) {
		t.Fatalf("id %d, %d filters; want 42, %d", pk.PacketID, len(got), len(filters))
	}
	if _, err := AppendSubscribe(nil, 1, nil, 1); err == nil {
		t.Error("a SUBSCRIBE without filters must be refused")
	}
	if _, err := AppendSubscribe(nil, 0, filters, 1); err == nil {
		t.Error("a SUBSCRIBE with packet id 0 must be refused")
	}
}

func TestAppendSmallPackets(t *testing.T) {
	for _, tc := range []struct {
		raw      []byte
		wantType byte
		wantID   uint16
	}{
		{AppendPuback(nil, 0x1234), packets.Puback, 0x1234},
		{AppendPingreq(nil), packets.Pingreq, 0},
		{AppendDisconnect(nil), packets.Disconnect, 0},
	} {
		pk, err := mochiDecode(tc.raw)
		if err != nil || pk.FixedHeader.Type != tc.wantType || pk.PacketID != tc.wantID {
			t.Errorf("% x: type %d id %d, %v; want type %d id %d", tc.raw, pk.FixedHeader.Type, pk.PacketID, err, tc.wantType, tc.wantID)
		}
	}
}

// TestRemainingLength checks the boundaries of the variable-length
// encoding against Mochi's decoder.
func TestRemainingLength(t *testing.T) {
	for _, n := range []int{0, 127, 128, 16383, 16384, 2097151, 2097152, MaxRemaining} {
		raw := appendHeader(nil, 0x30, n)
		got, used, err := packets.DecodeLength(bytes.NewReader(raw[1:]))
		if err != nil || got != n || used != len(raw)-1 {
			t.Errorf("length %d: Mochi reads %d from %d bytes, %v", n, got, used, err)
		}
	}
}
