package mqttpacket

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// decodeWhole decodes one whole packet through a Reader.
func decodeWhole(raw []byte) (Packet, error) {
	return NewReader(bytes.NewReader(raw), 64, 1<<20).Next()
}

// TestDecodeMochiPackets decodes what a broker built on Mochi's codec
// sends.
func TestDecodeMochiPackets(t *testing.T) {
	fh := func(t byte) packets.FixedHeader { return packets.FixedHeader{Type: t} }
	big := bytes.Repeat([]byte("p"), 5000) // larger than the reader's buffer
	for _, tc := range []struct {
		name string
		in   packets.Packet
		want Packet
	}{
		{"connack accepted", packets.Packet{FixedHeader: fh(packets.Connack), ReasonCode: 0},
			Packet{Type: Connack}},
		{"connack refused, session present", packets.Packet{FixedHeader: fh(packets.Connack), SessionPresent: true, ReasonCode: 5},
			Packet{Type: Connack, SessionPresent: true, ReturnCode: 5}},
		{"publish qos 1", packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Dup: true},
			TopicName: "/ota/device/upgrade/pk/dev-000001", PacketID: 9, Payload: []byte(`{"code":"1000"}`)},
			Packet{Type: Publish, QoS: 1, Dup: true, ID: 9, Topic: []byte("/ota/device/upgrade/pk/dev-000001"), Payload: []byte(`{"code":"1000"}`)}},
		{"publish qos 0 retained, large", packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true},
			TopicName: "t", Payload: big},
			Packet{Type: Publish, Retain: true, Topic: []byte("t"), Payload: big}},
		{"puback", packets.Packet{FixedHeader: fh(packets.Puback), PacketID: 65535}, Packet{Type: Puback, ID: 65535}},
		{"suback", packets.Packet{FixedHeader: fh(packets.Suback), PacketID: 3, ReasonCodes: []byte{1, 0, 0x80}},
			Packet{Type: Suback, ID: 3, Codes: []byte{1, 0, 0x80}}},
		{"unsuback", packets.Packet{FixedHeader: fh(packets.Unsuback), PacketID: 4}, Packet{Type: Unsuback, ID: 4}},
		{"pingresp", packets.Packet{FixedHeader: fh(packets.Pingresp)}, Packet{Type: Pingresp}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeWhole(mochiEncode(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !equal(got, tc.want) {
				t.Fatalf("decoded %+v, want %+v", got, tc.want)
			}
		})
	}
}

func equal(a, b Packet) bool {
	return a.Type == b.Type && a.ID == b.ID && a.QoS == b.QoS && a.Dup == b.Dup && a.Retain == b.Retain &&
		bytes.Equal(a.Topic, b.Topic) && bytes.Equal(a.Payload, b.Payload) &&
		a.SessionPresent == b.SessionPresent && a.ReturnCode == b.ReturnCode && bytes.Equal(a.Codes, b.Codes)
}

func TestDecodeRefusesMalformed(t *testing.T) {
	for name, raw := range map[string][]byte{
		"publish qos 3":             {0x36, 3, 0, 1, 't'},
		"publish dup at qos 0":      {0x38, 3, 0, 1, 't'},
		"publish topic overruns":    {0x30, 3, 0, 9, 't'},
		"publish without topic len": {0x30, 1, 0},
		"publish qos 1 without id":  {0x32, 3, 0, 1, 't'},
		"publish qos 1 with id 0":   {0x32, 5, 0, 1, 't', 0, 0},
		"connack too long":          {0x20, 3, 0, 0, 0},
		"connack reserved flags":    {0x20, 2, 2, 0},
		"puback too short":          {0x40, 1, 0},
		"puback with flags":         {0x42, 2, 0, 1},
		"pubrel without its flags":  {0x60, 2, 0, 1},
		"suback without codes":      {0x90, 2, 0, 1},
		"suback bad code":           {0x90, 3, 0, 1, 3},
		"pingresp with a body":      {0xd0, 1, 0},
		"connect from a broker":     {0x10, 0},
		"subscribe from a broker":   {0x82, 0},
		"reserved type 0":           {0x00, 0},
		"reserved type 15":          {0xf0, 0},
		"five length bytes":         {0x30, 0xff, 0xff, 0xff, 0xff, 0x01},
	} {
		if p, err := decodeWhole(raw); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %+v, %v; want ErrMalformed", name, p, err)
		}
	}
}

func TestReaderStream(t *testing.T) {
	var stream []byte
	stream = append(stream, mochiEncode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}})...)
	for i := range 100 {
		stream, _ = AppendPublish(stream, "topic", bytes.Repeat([]byte{byte(i)}, i*50), 1, uint16(i+1))
	}
	stream = append(stream, mochiEncode(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingresp}})...)
	// Read one byte at a time: a packet split across reads is reassembled.
	r := NewReader(&oneByteReader{stream}, 256, 1<<20)
	if p, err := r.Next(); err != nil || p.Type != Connack {
		t.Fatalf("first packet %+v, %v", p, err)
	}
	for i := range 100 {
		p, err := r.Next()
		if err != nil || p.Type != Publish || p.ID != uint16(i+1) || len(p.Payload) != i*50 || string(p.Topic) != "topic" {
			t.Fatalf("publish %d: %+v, %v", i, p, err)
		}
	}
	if p, err := r.Next(); err != nil || p.Type != Pingresp {
		t.Fatalf("last packet %+v, %v", p, err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("after the last packet: %v, want io.EOF", err)
	}
}

type oneByteReader struct{ b []byte }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0], r.b = r.b[0], r.b[1:]
	return 1, nil
}

func TestReaderLimits(t *testing.T) {
	raw, _ := AppendPublish(nil, "t", make([]byte, 1000), 0, 0)
	if _, err := NewReader(bytes.NewReader(raw), 64, 999).Next(); !errors.Is(err, ErrMalformed) {
		t.Errorf("a packet over the limit: %v, want ErrMalformed", err)
	}
	for _, cut := range []int{1, 2, 3, len(raw) - 1} {
		if _, err := NewReader(bytes.NewReader(raw[:cut]), 64, 1<<20).Next(); err != io.ErrUnexpectedEOF {
			t.Errorf("a packet cut after %d bytes: %v, want io.ErrUnexpectedEOF", cut, err)
		}
	}
}
