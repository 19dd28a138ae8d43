package mqtt

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/time/rate"

	"github.com/otafleet/otafleet/internal/protocol"
)

// onMessage runs on a paho goroutine per message. It decodes, then queues;
// see the package documentation for what happens when the queue is full.
func (g *Gateway) onMessage(_ paho.Client, pm paho.Message) {
	msg, err := protocol.Decode(pm.Topic(), pm.Payload())
	if err != nil {
		pm.Ack() // redelivery would not make it valid
		if errors.Is(err, protocol.ErrOwnReply) {
			g.metrics.ignored.Inc()
			g.stats.ignored.Add(1)
			return
		}
		g.reject(pm, err)
		return
	}
	msg.ReceivedAt = time.Now()
	g.metrics.received[msg.Kind].Inc()
	g.stats.received.Add(1)
	item := queued{msg: msg, ack: pm}
	select {
	case g.queue <- item:
		return
	default:
	}
	if pm.Qos() == 0 {
		g.metrics.dropped.Inc()
		g.stats.dropped.Add(1)
		return
	}
	g.metrics.fullWaits.Inc()
	select {
	case g.queue <- item:
	case <-g.done:
		// Stopping: leave it unacknowledged for the next session.
	}
}

func (g *Gateway) reject(pm paho.Message, err error) {
	reason := protocol.ReasonOf(err)
	if reason == "" {
		reason = "other"
	}
	g.metrics.rejected.WithLabelValues(string(reason)).Inc()
	g.stats.rejected.Add(1)
	if ok, suppressed := g.rejectLog.allow(); ok {
		topic := pm.Topic()
		if len(topic) > 160 {
			topic = topic[:160] + "..."
		}
		g.logger().Info("Refused an invalid device message", "reason", reason, "topic", topic,
			"payloadBytes", len(pm.Payload()), "error", err.Error(), "suppressedSinceLast", suppressed)
	}
}

// consume hands queued messages to the handler in batches until ctx ends,
// acknowledging each batch after the handler returned.
func (g *Gateway) consume(ctx context.Context) {
	batch := make([]protocol.Message, 0, g.cfg.BatchSize)
	acks := make([]paho.Message, 0, g.cfg.BatchSize)
	for {
		select {
		case <-ctx.Done():
			return
		case it := <-g.queue:
			batch, acks = append(batch, it.msg), append(acks, it.ack)
		}
	fill:
		for len(batch) < g.cfg.BatchSize {
			select {
			case it := <-g.queue:
				batch, acks = append(batch, it.msg), append(acks, it.ack)
			default:
				break fill
			}
		}
		g.handle(ctx, batch)
		if ctx.Err() != nil {
			// The handler may have given up on the batch because we are
			// stopping: leave it to the broker to deliver again.
			return
		}
		for _, a := range acks {
			a.Ack()
		}
		g.stats.handled.Add(uint64(len(batch)))
		clear(batch) // drop string references held by the reused arrays
		clear(acks)
		batch, acks = batch[:0], acks[:0]
	}
}

// handle calls the handler; a panic there is a bug in the operator, but it
// must not stop device traffic for the whole fleet, so it is logged, counted
// and the batch is acknowledged (redelivering it would panic again).
func (g *Gateway) handle(ctx context.Context, batch []protocol.Message) {
	defer func() {
		if r := recover(); r != nil {
			g.metrics.handlerPanics.Inc()
			g.logger().Error(fmt.Errorf("panic: %v", r), "Device message handler panicked", "batchSize", len(batch))
		}
	}()
	g.handler.HandleBatch(ctx, batch)
}

// rateLog lets a few log lines through per second and counts the rest, so
// that a device flooding junk cannot flood the operator's log.
type rateLog struct {
	limiter    *rate.Limiter
	suppressed atomic.Int64
}

func (r *rateLog) allow() (bool, int64) {
	if !r.limiter.Allow() {
		r.suppressed.Add(1)
		return false, 0
	}
	return true, r.suppressed.Swap(0)
}
