// Package dashboard serves `kubectl ota dashboard`: a local web UI for
// products, firmwares and rollouts. It reads the cluster through the user's
// own REST config (watches into an informer cache, pushed to the page over
// Server-Sent Events) and steers batches with the same spec patches as the
// plugin's verbs, made as the user, so Kubernetes RBAC decides what the page
// shows and allows. Nothing runs in the cluster and no credential is added.
//
// Device tables are paged on the server from a per-batch index of the
// batch's UpgradeSlices, so a page never receives more than one page of a
// 100,000-device rollout.
package dashboard
