// Package rollout holds the rollout engine's decisions as pure functions:
// each takes a snapshot of what it decides on and the current time, and
// returns what to do. Nothing here locks, reads the API server or talks to
// a device, so every rule is table-tested with a fake clock in
// milliseconds. The engine (internal/fleet) gathers the inputs under its
// lock and applies the answers.
package rollout
