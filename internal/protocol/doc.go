// Package protocol is the wire contract with devices (see PROTOCOL.md): the
// MQTT topics of the OTA service and the JSON payloads sent on them.
//
// Device → cloud messages (inform, progress, firmware/get and the older
// /ota/device/request) are decoded by Decode into one flat Message. Decode is
// the operator's hot path: it parses the topic without allocating, checks the
// payload with json.Valid and then walks it with a small scanner that knows
// only the handful of keys the protocol defines, so a progress report costs
// one or two small allocations (the id and the description text).
//
// Decoding is liberal where real devices differ from the documentation (an id
// that is a JSON number, a step sent as a number, a missing module) and strict
// about anything the operator would otherwise trust blindly: payload size,
// JSON syntax, step range, version and module syntax, topic segments. Every
// refusal is an *Error whose Reason is a short, bounded string suitable as a
// metric label.
//
// Cloud → device payloads (upgrade push, firmware/get reply, reply on the
// older request topic) are produced by the Encode functions exactly as the
// vendor's device SDKs expect them. The device-side halves (Inform, Progress,
// GetRequest, Request encoders and the DecodePush/DecodeGetReply decoders)
// exist for the fleet simulator and for tests.
package protocol
