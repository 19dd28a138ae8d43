// Package appapi is the HTTP API the vendor's mobile-app backend calls to
// list, confirm, follow and cancel the firmware upgrades of its users'
// devices (PROTOCOL.md, "App API"). It runs inside the manager as a
// Runnable on the leader, next to the rollout engine it reads and drives,
// on its own address and optionally with TLS.
//
// # Authentication and authorization
//
// Every request carries "Authorization: Bearer <JWT>". The token is
// verified with github.com/golang-jwt/jwt/v5 against the configured keys:
// an HMAC secret, or one or more RSA, ECDSA or Ed25519 public keys. Only the
// algorithms that fit the configured keys are accepted (so never "none",
// and never HMAC with a public key as the secret); exp is required, iss and
// aud must match the configuration. The operator stores no user data: the
// token says who the user is and what the user may touch.
//
//	{
//	  "iss": "https://app.example", "aud": "otafleet", "exp": 1760000000,
//	  "sub": "user-42",
//	  "devices": ["pk1/lamp-01", "pk1/lamp-02"],  // administered: read, confirm, cancel
//	  "shared":  ["pk2/plug-07"]                  // shared read-only: read
//	}
//
// A request naming any device outside both lists is refused as a whole
// before anything is done, as is a confirm or cancel naming a read-only
// device: all devices of a request are checked before the engine is
// touched.
//
// # Limits
//
// Bodies are limited (MaxBodyBytes, 413), requests are rate limited per
// user (token bucket per "sub", 429 with Retry-After), a confirm names at
// most 20 devices, a token at most MaxTokenDevices devices, and a user holds
// at most MaxStreamsPerUser progress streams.
//
// # Progress stream
//
// GET /living/ota/progress/stream is a server-sent-events stream of the
// caller's devices. It starts with one "progress" event per device that has
// a task (the current state), then a "synced" event, then a "progress" event
// (with an increasing id) for every change the engine makes to those
// devices' tasks, in the engine's order. The engine calls its listener
// under its lock, so the hub that fans events out never blocks: each
// stream has a bounded buffer, and a stream that falls behind is ended with
// an "overflow" event (and counted) rather than silently missing changes;
// EventSource clients reconnect by themselves and start from a fresh
// snapshot. A stream also ends when its token expires ("expired" event).
//
// # Metrics
//
// In controller-runtime's registry unless Config.Registerer says otherwise,
// prefixed otafleet_appapi_, never labelled by user or device:
// requests_total{endpoint,code}, request_duration_seconds{endpoint},
// auth_failures_total{reason}, rate_limited_total, streams,
// stream_events_total, stream_overflows_total.
package appapi
