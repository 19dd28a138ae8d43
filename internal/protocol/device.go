package protocol

import (
	"encoding/json"
	"strconv"
)

// Device → cloud encoders, for the fleet simulator and tests. They write
// what real devices write, including the vendor C SDK's habit of sending
// the id as a bare number (NumericID).

// Inform is a version report for one module.
type Inform struct {
	ID        uint32
	NumericID bool
	// Module is omitted when "" or DefaultModule, as devices do.
	Module  string
	Version string
}

// Encode returns the payload for InformTopic.
func (m Inform) Encode() []byte {
	b := appendHead(make([]byte, 0, 96), m.ID, m.NumericID)
	b = appendString(append(b, `"version":`...), m.Version)
	b = appendModule(b, m.Module)
	return append(b, "}}"...)
}

// Progress is a progress report.
type Progress struct {
	ID        uint32
	NumericID bool
	Module    string
	Step      Step
	Desc      string
}

// Encode returns the payload for ProgressTopic; the step is a string, as
// documented.
func (m Progress) Encode() []byte {
	b := appendHead(make([]byte, 0, 128), m.ID, m.NumericID)
	b = append(b, `"step":"`...)
	b = append(strconv.AppendInt(b, int64(m.Step), 10), `","desc":`...)
	b = appendString(b, m.Desc)
	b = appendModule(b, m.Module)
	return append(b, "}}"...)
}

// GetRequest asks for the pending upgrade of a module (firmware/get).
type GetRequest struct {
	ID     uint32
	Module string
}

// Encode returns the payload for FirmwareGetTopic.
func (m GetRequest) Encode() []byte {
	b := append(make([]byte, 0, 112), `{"id":"`...)
	b = strconv.AppendUint(b, uint64(m.ID), 10)
	b = append(b, `","version":"1.0","params":{`...)
	if m.Module != "" && m.Module != DefaultModule {
		b = appendString(append(b, `"module":`...), m.Module)
	}
	return append(b, `},"method":"thing.ota.firmware.get"}`...)
}

// Request is the older SDKs' request, with the device's current version.
type Request struct {
	ID      uint32
	Module  string
	Version string
}

// Encode returns the payload for RequestTopic; older SDKs send a numeric id.
func (m Request) Encode() []byte {
	b := appendHead(make([]byte, 0, 96), m.ID, true)
	b = appendString(append(b, `"version":`...), m.Version)
	b = appendModule(b, m.Module)
	return append(b, "}}"...)
}

func appendHead(b []byte, id uint32, numeric bool) []byte {
	b = append(b, `{"id":`...)
	if numeric {
		b = strconv.AppendUint(b, uint64(id), 10)
	} else {
		b = append(strconv.AppendUint(append(b, '"'), uint64(id), 10), '"')
	}
	return append(b, `,"params":{`...)
}

func appendModule(b []byte, module string) []byte {
	if module == "" || module == DefaultModule {
		return b
	}
	return appendString(append(b, `,"module":`...), module)
}

// appendString appends s as a JSON string. Simulator strings are versions,
// module names and short descriptions; json.Marshal of a string cannot fail.
func appendString(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
}
