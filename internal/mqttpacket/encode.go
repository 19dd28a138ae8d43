// Package mqttpacket encodes and decodes the MQTT 3.1.1 packets a client
// needs: it encodes CONNECT, PUBLISH, PUBACK, SUBSCRIBE, PINGREQ and
// DISCONNECT, and decodes what a broker sends a client. It exists so that
// one goroutine can serve a connection of thousands of simulated devices
// without a general client's per-message goroutines, channels and copies:
// encoders append to a caller's buffer, and decoded packets alias the
// reader's buffer instead of copying it.
package mqttpacket

import "errors"

// Type is a control packet type, the high nibble of the first byte.
type Type byte

// Control packet types (MQTT 3.1.1, section 2.2.1).
const (
	Connect     Type = 1
	Connack     Type = 2
	Publish     Type = 3
	Puback      Type = 4
	Pubrec      Type = 5
	Pubrel      Type = 6
	Pubcomp     Type = 7
	Subscribe   Type = 8
	Suback      Type = 9
	Unsubscribe Type = 10
	Unsuback    Type = 11
	Pingreq     Type = 12
	Pingresp    Type = 13
	Disconnect  Type = 14
)

// MaxRemaining is the largest remaining length four length bytes can hold.
const MaxRemaining = 268_435_455

// ErrTooLong is returned by encoders for a string over 65,535 bytes or a
// packet over MaxRemaining.
var ErrTooLong = errors.New("mqttpacket: field or packet too long")

// ConnectOptions are the fields of a CONNECT packet. No will message: the
// simulated devices, like the vendor's SDKs, set none.
type ConnectOptions struct {
	ClientID     string
	Username     string // sent when not empty
	Password     string // sent only with a user name, as MQTT 3.1.1 requires
	CleanSession bool
	KeepAlive    uint16 // seconds; 0 turns keep-alive off
}

// AppendConnect appends a CONNECT packet to b.
func AppendConnect(b []byte, o ConnectOptions) ([]byte, error) {
	var flags byte
	n := 10 + 2 + len(o.ClientID) // variable header, then the client id
	if o.CleanSession {
		flags |= 0x02
	}
	if o.Username != "" {
		flags |= 0x80
		n += 2 + len(o.Username)
		if o.Password != "" {
			flags |= 0x40
			n += 2 + len(o.Password)
		}
	}
	if len(o.ClientID) > 0xffff || len(o.Username) > 0xffff || len(o.Password) > 0xffff {
		return b, ErrTooLong
	}
	b = appendHeader(b, byte(Connect)<<4, n)
	b = appendString(b, "MQTT")
	b = append(b, 4, flags, byte(o.KeepAlive>>8), byte(o.KeepAlive))
	b = appendString(b, o.ClientID)
	if flags&0x80 != 0 {
		b = appendString(b, o.Username)
	}
	if flags&0x40 != 0 {
		b = appendString(b, o.Password)
	}
	return b, nil
}

// AppendPublish appends a PUBLISH packet to b. id is ignored at QoS 0 and
// must not be 0 otherwise.
func AppendPublish(b []byte, topic string, payload []byte, qos byte, id uint16) ([]byte, error) {
	if len(topic) > 0xffff || qos > 2 || (qos > 0 && id == 0) {
		return b, errors.New("mqttpacket: topic over 65,535 bytes, QoS over 2 or packet id 0")
	}
	n := 2 + len(topic) + len(payload)
	if qos > 0 {
		n += 2
	}
	if n > MaxRemaining {
		return b, ErrTooLong
	}
	b = appendHeader(b, byte(Publish)<<4|qos<<1, n)
	b = appendString(b, topic)
	if qos > 0 {
		b = append(b, byte(id>>8), byte(id))
	}
	return append(b, payload...), nil
}

// AppendPuback appends the PUBACK of packet id to b.
func AppendPuback(b []byte, id uint16) []byte {
	return append(b, byte(Puback)<<4, 2, byte(id>>8), byte(id))
}

// AppendSubscribe appends a SUBSCRIBE packet asking every filter at qos.
// It does not check the filters' syntax: the broker does, and refuses a bad
// one in its SUBACK.
func AppendSubscribe(b []byte, id uint16, filters []string, qos byte) ([]byte, error) {
	if len(filters) == 0 || id == 0 || qos > 2 {
		return b, errors.New("mqttpacket: SUBSCRIBE needs a filter, a packet id and a QoS up to 2")
	}
	n := 2
	for _, f := range filters {
		if len(f) > 0xffff {
			return b, ErrTooLong
		}
		n += 2 + len(f) + 1
	}
	if n > MaxRemaining {
		return b, ErrTooLong
	}
	b = appendHeader(b, byte(Subscribe)<<4|0x02, n) // flags 0010: [MQTT-3.8.1-1]
	b = append(b, byte(id>>8), byte(id))
	for _, f := range filters {
		b = appendString(b, f)
		b = append(b, qos)
	}
	return b, nil
}

// AppendPingreq appends a PINGREQ packet to b.
func AppendPingreq(b []byte) []byte { return append(b, byte(Pingreq)<<4, 0) }

// AppendDisconnect appends a DISCONNECT packet to b.
func AppendDisconnect(b []byte) []byte { return append(b, byte(Disconnect)<<4, 0) }

// appendHeader appends the fixed header: the first byte and the remaining
// length in the variable-length encoding (seven bits a byte, low first).
func appendHeader(b []byte, first byte, remaining int) []byte {
	b = append(b, first)
	for {
		d := byte(remaining % 128)
		remaining /= 128
		if remaining > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if remaining == 0 {
			return b
		}
	}
}

// appendString appends a length-prefixed string; callers check the length.
func appendString(b []byte, s string) []byte {
	b = append(b, byte(len(s)>>8), byte(len(s)))
	return append(b, s...)
}
