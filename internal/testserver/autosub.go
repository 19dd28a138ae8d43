package testserver

import (
	"bytes"
	"strings"
	"sync/atomic"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/otafleet/otafleet/internal/protocol"
)

// otaAutoSubscribe subscribes every device connection to its upgrade and
// firmware/get_reply topics as soon as its session is established, the way
// the vendor's own broker does. Devices built on LinkSDK 4.x never subscribe
// to those topics themselves; without this they never see a push.
//
// The device is known by its MQTT user name, "deviceName&productKey" (the
// vendor's convention); a connection with any other user name is left alone.
//
// Other brokers in front of 4.x devices need the same:
//   - EMQX: its Auto Subscribe feature subscribes a client on connect to
//     topics built with placeholders (${clientid}, ${username}, ...). A
//     placeholder stands for the whole value, and the vendor's "dn&pk" user
//     name cannot give /ota/device/upgrade/{pk}/{dn}: it works only where
//     the client ID or user name already has the "pk/dn" shape, otherwise an
//     EMQX plugin or ExHook has to split the user name as this hook does.
//   - Mosquitto: has no server-side subscription at all; 4.x devices need
//     EMQX (or another broker that has one) or a Mosquitto plugin that
//     subscribes the client when it connects.
type otaAutoSubscribe struct {
	mochi.HookBase
	server *mochi.Server
}

func (h *otaAutoSubscribe) ID() string { return "ota-auto-subscribe" }

func (h *otaAutoSubscribe) Provides(b byte) bool { return b == mochi.OnSessionEstablished }

// OnSessionEstablished runs after the session is inherited or cleaned (a
// clean session would drop subscriptions made earlier, in
// OnSessionEstablish) and before the broker reads the client's first
// packet, so the subscriptions are in place before the device's first
// inform reaches anyone.
func (h *otaAutoSubscribe) OnSessionEstablished(cl *mochi.Client, _ packets.Packet) {
	dn, pk, ok := DeviceFromUsername(cl.Properties.Username)
	if !ok {
		return
	}
	for _, filter := range []string{protocol.UpgradeTopic(pk, dn), protocol.FirmwareGetReplyTopic(pk, dn)} {
		sub := packets.Subscription{Filter: filter, Qos: 1}
		if h.server.Topics.Subscribe(cl.ID, sub) {
			atomic.AddInt64(&h.server.Info.Subscriptions, 1)
		}
		// Recorded on the client too, so the broker removes it when the
		// session ends.
		cl.State.Subscriptions.Add(filter, sub)
	}
}

// DeviceFromUsername splits the vendor's MQTT user name convention,
// "deviceName&productKey", and checks both are valid topic segments.
func DeviceFromUsername(username []byte) (dn, pk string, ok bool) {
	i := bytes.IndexByte(username, '&')
	if i < 0 {
		return "", "", false
	}
	dn, pk = string(username[:i]), string(username[i+1:])
	if strings.Contains(pk, "&") || !protocol.ValidSegment(dn) || !protocol.ValidSegment(pk) {
		return "", "", false
	}
	return dn, pk, true
}
