// Package shard gives each product to exactly one manager replica at a
// time, through one coordination.k8s.io Lease per productKey, and balances
// products among the live replicas.
//
// Every replica renews a member Lease of its own, so that the others can
// count it; each round (RetryPeriod) it reads the member and product
// Leases and decides (Decide, a pure function) which products to take and
// which to hand over: it takes free products while it holds fewer than its
// fair share, ceil(products / replicas), and releases one product a round
// while it holds more (a replica that joined takes the released ones). A
// replica that stops hands its products over at once: it stops their
// engines (which write what is pending) before it releases their Leases. A
// replica that dies loses them when their Leases expire, judged by how
// long a Lease's resourceVersion has stood still as this replica observed
// it, so clocks need not agree.
//
// Owning a product means running its shard: a rollout engine limited to
// the product and an MQTT gateway with the product's own persistent
// session (client ID <prefix>-<productKey>) subscribed to its topics only.
// The next owner connects with the same client ID and takes the session
// over with the device messages the broker queued for it. Router lets the
// controllers and the app API reach the engines this replica runs.
package shard
