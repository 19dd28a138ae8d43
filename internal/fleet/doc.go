// Package fleet is the rollout engine: the in-memory state of every device
// of every known product, the campaigns (VerificationRuns and
// UpgradeBatches) with one task per selected device, and the loops that push
// upgrades at a controlled rate, expire timeouts, schedule retries and write
// the state back to Kubernetes as slices.
//
// The engine is the only writer of DeviceSlices and UpgradeSlices. All
// state sits behind one mutex: every operation on it is a few map lookups,
// so one lock carries well over 10^5 device messages a second, and it keeps
// the rules that span campaigns (one active task per device) simple.
// Nothing under the lock does I/O: pushes, URL signing and API writes take
// a snapshot under the lock and run outside it.
//
// Writes are coalesced: a change marks its slice dirty and the flush loop
// writes each dirty slice at most once per flush window (1 s, growing to
// 10 s when a flush made more writes than 100 a second allow), so a device
// upgrade costs a small fraction of one API write however many messages it
// sends. The window is what a crash can lose; devices' later reports,
// re-pushes and timeouts recover it. Slices are rebuilt into memory when the engine starts (or a new
// leader takes over), and UpgradeSlices are the record of truth for tasks:
// the device locks are derived from their active tasks.
package fleet
