// Package plugin implements `kubectl ota`, the otafleet kubectl plugin.
//
// Every verb that changes a batch sends a JSON merge patch of spec only:
// the user's intent stays in spec where GitOps tools and `kubectl diff` see
// it, and status remains the operator's alone. Device listings page through
// the DeviceSlices and UpgradeSlices the rollout engine writes and print rows
// as pages arrive, so a 100,000-device product starts printing at once and
// never holds the whole inventory in memory.
package plugin
