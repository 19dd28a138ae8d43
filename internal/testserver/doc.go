// Package testserver starts the real servers that integration tests and the
// playground run against: kube-apiserver and etcd (through envtest), MinIO,
// Mosquitto and an embedded Mochi MQTT broker. Binaries come from
// hack/setup-test-env.sh, which builds them from source once and caches them
// outside the checkout.
package testserver
