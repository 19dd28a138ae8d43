// Package devicesim simulates a fleet of devices that speak the OTA
// protocol over MQTT the way devices built on the vendor's C SDK do. Tests,
// benchmarks and the playground run it in-process; cmd/devicesim wraps it in
// flags.
//
// Each device informs every module's version when its connection comes up,
// and on an upgrade push (or a reply to its own firmware/get or older-SDK
// request) downloads the image over HTTP, checks size and digest, reports
// progress (step 0 first, then percentages at most once per
// ProgressInterval), "flashes", and informs the new version. Failures are
// injected per device from a hash of (Seed, device name), so which device
// fails and how never depends on timing; Fleet.Plan tells a test in advance,
// and Config.Plans fixes the plan of particular devices. Besides failing a
// step, a device may revert (Failures.Revert): it informs the new version,
// then, RevertAfter later, its old one again, as a bootloader that falls
// back does; a campaign's soak is there to catch it.
//
// Two connection modes: one MQTT connection per device, as in the field, and
// multiplexed, where a few connections carry thousands of devices each (the
// only way to simulate 100,000 devices on one machine). A multiplexed
// connection subscribes to each of its devices' topics, batched into large
// SUBSCRIBE packets, so every push is delivered once; WildcardSubscriptions
// uses /ota/device/upgrade/{pk}/+ instead, at the cost of every connection
// receiving (and discarding) every push.
//
// The network side (conn.go) is kept apart from device behaviour (device.go,
// the plans, the profiles). Each connection is an internal/mqttclient
// client: one reader goroutine decodes (internal/mqttpacket) and routes
// every message of its thousands of devices, one writer gathers their
// publishes into few writes, and a device's QoS 1 publish is an append to
// that buffer and a wait for its PUBACK. A general MQTT client (paho) spent
// goroutine and channel hand-offs on every message and cost the simulator
// several times the CPU of the devices' own work; see bench/results.md.
//
// Config.Profile chooses how strictly devices behave. The default,
// lenient, forgives what real devices do not (redirects, ports in URLs,
// chunked bodies); ProfileSDK3 and ProfileSDK4 behave exactly as devices
// built on the vendor's C SDK 3.x and LinkSDK 4.x do, download over a raw
// HTTP/1.1 client from the URL host's default port (Config.Hosts maps a
// host to a test server), and count in Summary.ContractViolations every
// URL, push or download server a device in the field would fail on.
package devicesim
