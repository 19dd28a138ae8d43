package mqttpacket

import (
	"bytes"
	"testing"
	"unicode/utf8"

	"github.com/mochi-mqtt/server/v2/packets"
)

// FuzzReader feeds arbitrary streams to the reader: it must never panic,
// and every PUBLISH it accepts must be one Mochi reads the same way and one
// that encodes back to the bytes it came from.
func FuzzReader(f *testing.F) {
	pub, _ := AppendPublish(nil, "/ota/device/upgrade/pk/dev-000001", []byte(`{"code":"1000"}`), 1, 7)
	f.Add(pub)
	f.Add(append(AppendPuback(nil, 1), 0xd0, 0))
	f.Add([]byte{0x20, 2, 0, 0, 0x90, 4, 0, 1, 1, 0x80})
	f.Add([]byte{0x3b, 6, 0, 1, 't', 0, 1, 'x'}) // QoS 1, DUP, RETAIN
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), 16, 1<<16)
		consumed := 0
		for {
			p, err := r.Next()
			if err != nil {
				return
			}
			size := packetSize(data[consumed:])
			raw := data[consumed : consumed+size]
			consumed += size
			if p.Type == Publish {
				checkPublish(t, raw, p)
			}
		}
	})
}

// packetSize is the size of the well-formed packet at the start of b.
func packetSize(b []byte) int {
	n, i := 0, 1
	for shift := 0; ; shift += 7 {
		n |= int(b[i]&0x7f) << shift
		i++
		if b[i-1]&0x80 == 0 {
			return i + n
		}
	}
}

func checkPublish(t *testing.T, raw []byte, p Packet) {
	t.Helper()
	// Re-encoding gives the same bytes, but for flags and a non-minimal
	// length encoding, which the encoder never writes.
	again, err := AppendPublish(nil, string(p.Topic), p.Payload, p.QoS, p.ID)
	if err != nil {
		t.Fatalf("re-encoding %+v: %v", p, err)
	}
	back, err := decodeWhole(again)
	if err != nil || !equal(back, Packet{Type: Publish, QoS: p.QoS, ID: p.ID, Topic: p.Topic, Payload: p.Payload}) {
		t.Fatalf("round trip of %+v: %+v, %v", p, back, err)
	}
	if !mqttString(p.Topic) {
		return // this codec takes any bytes, as devices do; Mochi refuses them
	}
	pk, err := mochiDecode(raw)
	if err != nil {
		t.Fatalf("Mochi refuses the PUBLISH % x this codec read as %+v: %v", raw, p, err)
	}
	if pk.TopicName != string(p.Topic) || !bytes.Equal(pk.Payload, p.Payload) || pk.FixedHeader.Qos != p.QoS ||
		pk.PacketID != p.ID || pk.FixedHeader.Dup != p.Dup || pk.FixedHeader.Retain != p.Retain {
		t.Fatalf("Mochi reads % x as %+v, this codec as %+v", raw, pk, p)
	}
}

// mqttString reports whether b is a string MQTT allows: UTF-8 without
// U+0000 ([MQTT-1.5.3-1], [MQTT-1.5.3-2]).
func mqttString(b []byte) bool { return utf8.Valid(b) && bytes.IndexByte(b, 0) < 0 }

// FuzzPublish encodes arbitrary publishes and decodes them with this
// codec and with Mochi's.
func FuzzPublish(f *testing.F) {
	f.Add("/ota/device/progress/pk/dev-000001", []byte(`{"id":1}`), byte(1), uint16(1))
	f.Add("", []byte{}, byte(0), uint16(0))
	f.Add("a/b", bytes.Repeat([]byte{0}, 300), byte(2), uint16(65535))
	f.Fuzz(func(t *testing.T, topic string, payload []byte, qos byte, id uint16) {
		raw, err := AppendPublish(nil, topic, payload, qos, id)
		if err != nil {
			if qos <= 2 && (qos == 0 || id != 0) && len(topic) <= 0xffff {
				t.Fatalf("valid publish refused: %v", err)
			}
			return
		}
		if qos == 0 {
			id = 0
		}
		p, err := decodeWhole(raw)
		if err != nil || !equal(p, Packet{Type: Publish, QoS: qos, ID: id, Topic: []byte(topic), Payload: payload}) {
			t.Fatalf("decoded %+v, %v", p, err)
		}
		checkPublish(t, raw, p)
	})
}

// FuzzSubscribe encodes arbitrary filter lists and decodes them with
// Mochi's codec.
func FuzzSubscribe(f *testing.F) {
	f.Add("/ota/device/upgrade/pk/+", "/sys/pk/dev/thing/ota/firmware/get_reply", uint16(1))
	f.Add("#", "", uint16(65535))
	f.Fuzz(func(t *testing.T, a, b string, id uint16) {
		if !mqttString([]byte(a)) || !mqttString([]byte(b)) || id == 0 {
			return
		}
		raw, err := AppendSubscribe(nil, id, []string{a, b}, 1)
		if err != nil {
			t.Fatal(err)
		}
		pk, err := mochiDecode(raw)
		if err != nil || pk.PacketID != id || len(pk.Filters) != 2 || pk.Filters[0].Filter != a || pk.Filters[1].Filter != b {
			t.Fatalf("Mochi reads % x as %+v, %v", raw, pk, err)
		}
		if pk.Filters[0].Qos != 1 || pk.Filters[1].Qos != 1 || pk.FixedHeader.Type != packets.Subscribe {
			t.Fatalf("Mochi reads % x as %+v", raw, pk)
		}
	})
}
