package mqttpacket

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// ErrMalformed wraps every decoding error: the connection should be
// closed, as MQTT requires on a malformed packet.
var ErrMalformed = errors.New("mqttpacket: malformed packet")

// Packet is a decoded packet from a broker. Topic, Payload and Codes alias
// the buffer the packet was decoded from: they are valid until the next
// Reader.Next, and a caller that keeps them copies them.
type Packet struct {
	Type Type
	// ID is the packet identifier of PUBLISH (QoS 1 and 2), PUBACK, PUBREC,
	// PUBREL, PUBCOMP, SUBACK and UNSUBACK.
	ID uint16
	// QoS, Dup and Retain are the flags of a PUBLISH.
	QoS         byte
	Dup, Retain bool
	// Topic and Payload of a PUBLISH.
	Topic, Payload []byte
	// SessionPresent and ReturnCode of a CONNACK.
	SessionPresent bool
	ReturnCode     byte
	// Codes are the return codes of a SUBACK, one per filter asked: the
	// granted QoS, or SubackFailure.
	Codes []byte
}

// SubackFailure is a SUBACK return code refusing a filter.
const SubackFailure = 0x80

// Decode decodes one packet a broker sends a client from its first byte
// and its remaining bytes. Packets only clients send (CONNECT, SUBSCRIBE,
// UNSUBSCRIBE, PINGREQ, DISCONNECT) are malformed here.
func Decode(first byte, body []byte) (Packet, error) {
	p := Packet{Type: Type(first >> 4)}
	flags := first & 0x0f
	if err := checkFlags(p.Type, flags); err != nil {
		return Packet{}, err
	}
	switch p.Type {
	case Publish:
		return decodePublish(p, flags, body)
	case Connack:
		if len(body) != 2 || body[0]&0xfe != 0 {
			return Packet{}, malformed("CONNACK of %d bytes, flags %#x", len(body), first)
		}
		p.SessionPresent, p.ReturnCode = body[0] == 1, body[1]
	case Puback, Pubrec, Pubrel, Pubcomp, Unsuback:
		if len(body) != 2 {
			return Packet{}, malformed("packet type %d with %d remaining bytes, want 2", p.Type, len(body))
		}
		p.ID = uint16(body[0])<<8 | uint16(body[1])
	case Suback:
		return decodeSuback(p, body)
	case Pingresp:
		if len(body) != 0 {
			return Packet{}, malformed("PINGRESP with %d remaining bytes", len(body))
		}
	default:
		return Packet{}, malformed("packet type %d from a broker", p.Type)
	}
	return p, nil
}

// checkFlags applies the fixed header's reserved flags (section 2.2.2).
func checkFlags(t Type, flags byte) error {
	switch t {
	case Publish:
		if flags>>1&3 == 3 {
			return malformed("PUBLISH with QoS 3")
		}
	case Pubrel:
		if flags != 0x02 {
			return malformed("PUBREL with flags %#x", flags)
		}
	default:
		if flags != 0 {
			return malformed("packet type %d with flags %#x", t, flags)
		}
	}
	return nil
}

func decodePublish(p Packet, flags byte, body []byte) (Packet, error) {
	p.QoS, p.Dup, p.Retain = flags>>1&3, flags&0x08 != 0, flags&0x01 != 0
	if p.QoS == 0 && p.Dup {
		return Packet{}, malformed("PUBLISH with DUP at QoS 0") // [MQTT-3.3.1-2]
	}
	if len(body) < 2 {
		return Packet{}, malformed("PUBLISH of %d bytes", len(body))
	}
	n := int(body[0])<<8 | int(body[1])
	rest := body[2:]
	if n > len(rest) {
		return Packet{}, malformed("PUBLISH topic of %d bytes in %d", n, len(rest))
	}
	p.Topic, rest = rest[:n:n], rest[n:]
	if p.QoS > 0 {
		if len(rest) < 2 {
			return Packet{}, malformed("PUBLISH at QoS %d without a packet id", p.QoS)
		}
		p.ID, rest = uint16(rest[0])<<8|uint16(rest[1]), rest[2:]
		if p.ID == 0 {
			return Packet{}, malformed("PUBLISH with packet id 0") // [MQTT-2.3.1-1]
		}
	}
	p.Payload = rest
	return p, nil
}

func decodeSuback(p Packet, body []byte) (Packet, error) {
	if len(body) < 3 {
		return Packet{}, malformed("SUBACK of %d bytes", len(body))
	}
	p.ID, p.Codes = uint16(body[0])<<8|uint16(body[1]), body[2:]
	for _, c := range p.Codes {
		if c > 2 && c != SubackFailure {
			return Packet{}, malformed("SUBACK return code %#x", c)
		}
	}
	return p, nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// Reader reads packets from a connection through a buffer.
type Reader struct {
	r   *bufio.Reader
	max int
	big []byte // for a packet larger than r's buffer
}

// NewReader reads packets from r through a buffer of size bytes; a packet
// whose remaining length exceeds maxSize is an error.
func NewReader(r io.Reader, size, maxSize int) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, size), max: maxSize}
}

// Buffered returns the number of bytes read from the connection but not
// yet returned as packets.
func (r *Reader) Buffered() int { return r.r.Buffered() }

// Next reads and decodes the next packet. The packet aliases the reader's
// buffer until the next call. Any error ends the connection: after a
// malformed packet the stream cannot be trusted.
func (r *Reader) Next() (Packet, error) {
	first, err := r.r.ReadByte()
	if err != nil {
		return Packet{}, err
	}
	n, err := r.remaining()
	if err != nil {
		return Packet{}, err
	}
	if n > r.max {
		return Packet{}, malformed("packet of %d bytes, more than the %d allowed", n, r.max)
	}
	body, err := r.body(n)
	if err != nil {
		return Packet{}, err
	}
	return Decode(first, body)
}

// remaining reads the variable-length remaining length: at most four
// bytes, and no overlong encoding needed to be refused by a client.
func (r *Reader) remaining() (int, error) {
	n := 0
	for i, shift := 0, 0; ; i, shift = i+1, shift+7 {
		if i == 4 {
			return 0, malformed("remaining length of more than four bytes")
		}
		b, err := r.r.ReadByte()
		if err != nil {
			return 0, noEOF(err)
		}
		n |= int(b&0x7f) << shift
		if b&0x80 == 0 {
			return n, nil
		}
	}
}

// body returns the next n bytes: in place in the buffer when they fit
// (no copy), else in a buffer of its own.
func (r *Reader) body(n int) ([]byte, error) {
	if n <= r.r.Size() {
		b, err := r.r.Peek(n)
		if err != nil {
			return nil, noEOF(err)
		}
		_, _ = r.r.Discard(n) // cannot fail after a full Peek; the bytes stay until the next read
		return b, nil
	}
	if cap(r.big) < n {
		r.big = make([]byte, n)
	}
	b := r.big[:n]
	if _, err := io.ReadFull(r.r, b); err != nil {
		return nil, noEOF(err)
	}
	return b, nil
}

// noEOF turns an EOF inside a packet into ErrUnexpectedEOF: only an EOF
// between packets is a clean end.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
