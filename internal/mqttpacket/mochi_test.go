package mqttpacket

import (
	"bytes"
	"fmt"

	"github.com/mochi-mqtt/server/v2/packets"
)

// The tests check this codec against an independent one: the packets
// package of the Mochi broker, which the project runs in its tests.

// mochiDecode decodes one whole packet with Mochi's codec, as a 3.1.1
// broker or client would.
func mochiDecode(raw []byte) (packets.Packet, error) {
	pk := packets.Packet{ProtocolVersion: 4}
	if len(raw) == 0 {
		return pk, fmt.Errorf("empty")
	}
	if err := pk.FixedHeader.Decode(raw[0]); err != nil {
		return pk, err
	}
	r := bytes.NewReader(raw[1:])
	n, _, err := packets.DecodeLength(r)
	if err != nil {
		return pk, err
	}
	body := raw[len(raw)-r.Len():]
	if n != len(body) {
		return pk, fmt.Errorf("remaining length %d, %d bytes follow", n, len(body))
	}
	pk.FixedHeader.Remaining = n
	decoders := map[byte]func([]byte) error{
		packets.Connect: pk.ConnectDecode, packets.Connack: pk.ConnackDecode, packets.Publish: pk.PublishDecode,
		packets.Puback: pk.PubackDecode, packets.Subscribe: pk.SubscribeDecode, packets.Suback: pk.SubackDecode,
		packets.Unsuback: pk.UnsubackDecode, packets.Pingreq: pk.PingreqDecode, packets.Pingresp: pk.PingrespDecode,
		packets.Disconnect: pk.DisconnectDecode,
	}
	decode, ok := decoders[pk.FixedHeader.Type]
	if !ok {
		return pk, fmt.Errorf("type %d not decoded here", pk.FixedHeader.Type)
	}
	return pk, decode(body)
}

// mochiEncode encodes pk with Mochi's codec as MQTT 3.1.1.
func mochiEncode(pk packets.Packet) []byte {
	pk.ProtocolVersion = 4
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Suback:
		err = pk.SubackEncode(&buf)
	case packets.Unsuback:
		err = pk.UnsubackEncode(&buf)
	case packets.Pingresp:
		err = pk.PingrespEncode(&buf)
	default:
		err = fmt.Errorf("type %d not encoded here", pk.FixedHeader.Type)
	}
	if err != nil {
		panic(err)
	}
	return buf.Bytes()
}
