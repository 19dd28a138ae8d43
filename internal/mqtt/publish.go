package mqtt

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/otafleet/otafleet/internal/protocol"
)

// Publisher sends cloud → device messages. The rollout engine depends on
// this interface, not on the gateway, so that its tests can use a fake.
// Every method publishes with QoS 1 and returns once the broker acknowledged
// or the publish timed out; a timed-out publish may still be delivered later
// (at-least-once), which devices tolerate.
type Publisher interface {
	// PublishUpgrade pushes an upgrade to a device.
	PublishUpgrade(ctx context.Context, productKey, deviceName string, u protocol.Upgrade) error
	// PublishGetReply answers a firmware/get request; u nil means nothing
	// is pending for that module.
	PublishGetReply(ctx context.Context, productKey, deviceName, requestID string, u *protocol.Upgrade) error
	// PublishRequestReply answers a request on the older request topic.
	PublishRequestReply(ctx context.Context, productKey, deviceName string, u *protocol.Upgrade) error
}

var _ Publisher = (*Gateway)(nil)

// ErrNotConnected is returned by publishes while the broker is unreachable,
// instead of letting paho queue a push that may go out much later.
var ErrNotConnected = errors.New("mqtt: not connected to the broker")

// PublishUpgrade implements Publisher.
func (g *Gateway) PublishUpgrade(ctx context.Context, pk, dn string, u protocol.Upgrade) error {
	if err := checkDevice(pk, dn); err != nil {
		return err
	}
	payload, err := protocol.EncodePush(g.pushID.Add(1), u)
	if err != nil {
		return err
	}
	return g.publish(ctx, "upgrade", protocol.UpgradeTopic(pk, dn), payload)
}

// PublishGetReply implements Publisher.
func (g *Gateway) PublishGetReply(ctx context.Context, pk, dn, requestID string, u *protocol.Upgrade) error {
	if err := checkDevice(pk, dn); err != nil {
		return err
	}
	payload, err := protocol.EncodeGetReply(requestID, u)
	if err != nil {
		return err
	}
	return g.publish(ctx, "firmware_get_reply", protocol.FirmwareGetReplyTopic(pk, dn), payload)
}

// PublishRequestReply implements Publisher.
func (g *Gateway) PublishRequestReply(ctx context.Context, pk, dn string, u *protocol.Upgrade) error {
	if err := checkDevice(pk, dn); err != nil {
		return err
	}
	payload, err := protocol.EncodeRequestReply(g.pushID.Add(1), u)
	if err != nil {
		return err
	}
	return g.publish(ctx, "request_reply", protocol.RequestTopic(pk, dn), payload)
}

// checkDevice refuses names that would change the topic's meaning (a '+'
// or '/' in a device name coming from a manifest, for instance).
func checkDevice(pk, dn string) error {
	if !protocol.ValidSegment(pk) || !protocol.ValidSegment(dn) {
		return fmt.Errorf("mqtt: invalid product key or device name %q/%q: %w", pk, dn, protocol.ErrInvalidTopic)
	}
	return nil
}

// publish sends with QoS 1; label names the message kind in metrics:
// upgrade, firmware_get_reply or request_reply.
func (g *Gateway) publish(ctx context.Context, label, topic string, payload []byte) error {
	if !g.State().Connected {
		g.countPublish(label, resultNotConnected)
		return ErrNotConnected
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.PublishTimeout)
	defer cancel()
	start := time.Now()
	tok := g.client.Publish(topic, 1, false, payload)
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			g.countPublish(label, resultError)
			return fmt.Errorf("mqtt: publish %s to %s: %w", label, topic, err)
		}
	case <-ctx.Done():
		g.countPublish(label, resultTimeout)
		return fmt.Errorf("mqtt: publish %s to %s: %w", label, topic, ctx.Err())
	}
	g.metrics.publishLatency.WithLabelValues(label).Observe(time.Since(start).Seconds())
	g.countPublish(label, resultOK)
	return nil
}

func (g *Gateway) countPublish(kind, result string) {
	g.metrics.published.WithLabelValues(kind, result).Inc()
	if result == resultOK {
		g.stats.published.Add(1)
	} else {
		g.stats.publishFailed.Add(1)
	}
}
