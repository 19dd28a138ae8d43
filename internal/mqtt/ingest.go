package mqtt

import (
	"context"
	"errors"
	"fmt"
	"slices"
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

// pendingBatches bounds the batches waiting for their effect to be
// written; when they are full, consume waits, the queue fills, and
// backpressure reaches the broker.
const pendingBatches = 4096

// pendingAcks are a batch's messages, acknowledged once durable returns.
type pendingAcks struct {
	acks    []paho.Message
	durable func(context.Context) error
}

// ingest hands queued messages to the handler and acknowledges them once
// durable, until ctx ends.
func (g *Gateway) ingest(ctx context.Context) {
	pending := make(chan pendingAcks, pendingBatches)
	ackerDone := make(chan struct{})
	go func() {
		defer close(ackerDone)
		g.ackWhenDurable(ctx, pending)
	}()
	g.consume(ctx, pending)
	close(pending)
	<-ackerDone
}

// ackWhenDurable acknowledges batches in order, each once its effect is
// durable. On stop the rest stay unacknowledged: the broker delivers them
// again to the next session.
func (g *Gateway) ackWhenDurable(ctx context.Context, pending <-chan pendingAcks) {
	for p := range pending {
		if p.durable != nil {
			if err := p.durable(ctx); err != nil {
				continue // stopping: drain without acknowledging
			}
		}
		for _, a := range p.acks {
			a.Ack()
		}
		g.stats.handled.Add(uint64(len(p.acks)))
	}
}

// consume hands queued messages to the handler in batches until ctx ends,
// and passes each batch on to be acknowledged once its effect is durable.
func (g *Gateway) consume(ctx context.Context, pending chan<- pendingAcks) {
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
		durable := g.handle(ctx, batch)
		if ctx.Err() != nil {
			// The handler may have given up on the batch because we are
			// stopping: leave it to the broker to deliver again.
			return
		}
		select {
		case pending <- pendingAcks{acks: slices.Clone(acks), durable: durable}:
		case <-ctx.Done():
			return
		}
		clear(batch) // drop string references held by the reused arrays
		clear(acks)
		batch, acks = batch[:0], acks[:0]
	}
}

// handle calls the handler; a panic there is a bug in the operator, but it
// must not stop device traffic for the whole fleet, so it is logged, counted
// and the batch is acknowledged (redelivering it would panic again).
func (g *Gateway) handle(ctx context.Context, batch []protocol.Message) (durable func(context.Context) error) {
	defer func() {
		if r := recover(); r != nil {
			g.metrics.handlerPanics.Inc()
			g.logger().Error(fmt.Errorf("panic: %v", r), "Device message handler panicked", "batchSize", len(batch))
			durable = nil
		}
	}()
	return g.handler.HandleBatch(ctx, batch)
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
