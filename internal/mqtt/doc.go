// Package mqtt is the operator's gateway to the MQTT broker: the one owner
// of the broker connection. It subscribes to every device → cloud topic of
// the OTA protocol, decodes what arrives with package protocol, hands the
// messages in batches to a Handler (the fleet state), and publishes upgrade
// pushes and replies for the rollout engine through the Publisher interface.
//
// # Connection
//
// One paho client, MQTT 3.1.1, fixed client ID and a persistent session
// (CleanSession false), so the broker queues device reports while the
// operator restarts or fails over. With leader election (the default) every
// replica must use the same client ID: the new leader takes the session over
// with its queue. With products owned by Lease (internal/shard), each
// product's owner runs a gateway of its own for that product only
// (ProductKeys), with the client ID <prefix>-<productKey>: the next owner
// takes that session over. No replica ever subscribes to a product it
// does not own; shared subscriptions ($share/), which would hand a
// product's messages to any replica, are not offered.
// paho reconnects with exponential backoff up to MaxReconnectInterval (5 s
// by default: a broker without persistence loses what devices send while
// the gateway is away); subscriptions are made again on every connect
// (OnConnect), because a broker that restarted without persistence has
// forgotten them.
//
// # Acknowledgement and backpressure
//
// Automatic acknowledgement is off. A QoS 1 message is acknowledged only
// once its effect is durable: Handler.HandleBatch returns, for the batch
// holding it, a function that blocks until what the batch changed is
// written (the engine's slices), and a separate goroutine acknowledges the
// batches in order as they become durable while the gateway goes on with
// the next ones (at most pendingBatches waiting). A batch that changed
// nothing is acknowledged at once. A message still queued or waiting when
// the gateway stops, or in a batch whose HandleBatch returns after the
// gateway's context ended, is not acknowledged: the broker delivers it
// again to the next session (the handler must tolerate duplicates, which
// QoS 1 implies anyway). So a crash at any instant loses no report the
// operator acknowledged. The messages waiting count against the broker's
// in-flight window for the session; docs/brokers.md says how large it must
// be.
//
// Messages pass through a bounded queue (QueueSize). paho calls the message
// handler on its own goroutine per message (OrderMatters false), so a full
// queue never stalls the network reader or keepalives; the price is one
// short-lived goroutine per message in flight, which is bounded by the
// broker's in-flight window for the session (Mosquitto:
// max_inflight_messages) and shows as transient memory in a burst. When the
// queue is full:
//   - QoS 1 messages wait for room. They are not acknowledged while they
//     wait, so the broker's in-flight window for this session fills up and
//     the broker stops sending and queues instead: backpressure reaches the
//     broker, and nothing a device sent with QoS 1 is dropped by the
//     operator. Waits are counted (otafleet_mqtt_queue_full_waits_total).
//     Configure the broker to queue enough for the backend session
//     (Mosquitto: max_queued_messages; Mochi: MaximumClientWritesPending),
//     since a broker drops, not the gateway, when its own queue overflows.
//   - QoS 0 messages are dropped and counted
//     (otafleet_mqtt_messages_dropped_total): the device chose
//     at-most-once, nothing bounds how many of them the broker sends, and
//     their content is repeated by the device anyway.
//
// Invalid device messages are acknowledged (redelivery would not make them
// valid), counted by reason, logged at a limited rate, and never reach the
// handler. The backend's own replies on the older request topic are counted
// as ignored.
//
// # Metrics
//
// In controller-runtime's registry unless Config.Registerer says otherwise,
// all prefixed otafleet_mqtt_, never labelled by device: connected,
// connects_total, connection_lost_total, messages_received_total{kind},
// messages_rejected_total{reason}, messages_ignored_total,
// messages_dropped_total, queue_full_waits_total, queue_length,
// handler_panics_total, published_total{kind,result} (kind upgrade,
// firmware_get_reply or request_reply; result ok, error, timeout or
// not_connected), publish_duration_seconds{kind}.
package mqtt
