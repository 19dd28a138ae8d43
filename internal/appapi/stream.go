package appapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// SSE event names of the progress stream.
const (
	EventProgress = "progress"
	EventSynced   = "synced"
	EventOverflow = "overflow"
	EventExpired  = "expired"
)

// reconnectMillis is the "retry" the stream asks EventSource clients to
// wait before they reconnect.
const reconnectMillis = 2000

// stream serves the progress stream: a snapshot of the caller's devices,
// then their changes as the engine makes them. See the package doc.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	const name = "progress_stream"
	c, err := s.admit(r)
	if s.forward(w, r, err) {
		return
	}
	if err == nil && !s.streams.acquire(c.user) {
		err = errorf(http.StatusTooManyRequests, "at most %d progress streams per user", s.cfg.MaxStreamsPerUser)
	}
	if err != nil {
		s.metrics.observe(name, statusOf(err), -1)
		writeError(w, err)
		return
	}
	defer s.streams.release(c.user)
	s.metrics.observe(name, http.StatusOK, -1)
	s.metrics.streams.Inc()
	defer s.metrics.streams.Dec()

	// Subscribe before the snapshot, so that no change falls between them.
	// A change made while the snapshot is read may come again after it, so
	// a client may see a state repeated, and the last one it sees for a
	// device is always the current one.
	sub := s.hub.subscribe(c.order)
	defer s.hub.unsubscribe(sub)

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx would buffer the stream
	w.WriteHeader(http.StatusOK)
	sw := &sseWriter{w: w, rc: http.NewResponseController(w), timeout: s.cfg.WriteTimeout}
	sw.raw([]byte("retry: " + strconv.Itoa(reconnectMillis) + "\n\n"))
	for _, d := range c.order {
		if t, ok := s.task(d); ok {
			sw.event(EventProgress, 0, progressOf(t, c.can(d)))
		}
	}
	sw.event(EventSynced, 0, struct{}{})
	if sw.flush() != nil {
		return
	}

	expiry := time.NewTimer(c.expires.Sub(s.cfg.Now()))
	defer expiry.Stop()
	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	ctx := r.Context()
	send := func(ev event) {
		sw.event(EventProgress, ev.seq, progressOf(ev.task, c.can(device{ev.task.ProductKey, ev.task.Device})))
		s.metrics.streamEvents.Inc()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-expiry.C:
			sw.event(EventExpired, 0, map[string]string{"message": "the token expired; reconnect with a new one"})
			_ = sw.flush()
			return
		case <-heartbeat.C:
			sw.raw([]byte(": keepalive\n\n"))
		case ev, ok := <-sub.ch:
			// Write what else is waiting before one flush, so that a burst
			// costs one write to the socket.
		drain:
			for n := 1; ok; n++ {
				send(ev)
				if n == cap(sub.ch) {
					break
				}
				select {
				case ev, ok = <-sub.ch:
				default:
					break drain
				}
			}
			if !ok {
				// The hub closed the channel: events were lost.
				sw.event(EventOverflow, 0, map[string]string{"message": "the client fell behind; reconnect for a fresh snapshot"})
				_ = sw.flush()
				return
			}
		}
		if err := sw.flush(); err != nil {
			ctrllog.FromContext(ctx).V(1).Info("Progress stream ended", "error", err.Error())
			return
		}
	}
}

// sseWriter writes server-sent events; the first error sticks and ends the
// stream at the next flush.
type sseWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	err     error
}

func (s *sseWriter) raw(b []byte) {
	if s.err != nil {
		return
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	_, s.err = s.w.Write(b)
}

// event writes one event; id 0 is none (snapshot and control events).
func (s *sseWriter) event(name string, id uint64, data any) {
	b, err := json.Marshal(data)
	if err != nil {
		s.err = err
		return
	}
	msg := make([]byte, 0, len(b)+64)
	if id != 0 {
		msg = append(msg, "id: "...)
		msg = strconv.AppendUint(msg, id, 10)
		msg = append(msg, '\n')
	}
	msg = append(msg, "event: "...)
	msg = append(msg, name...)
	msg = append(msg, "\ndata: "...)
	msg = append(msg, b...)
	msg = append(msg, "\n\n"...)
	s.raw(msg)
}

func (s *sseWriter) flush() error {
	if s.err == nil {
		s.err = s.rc.Flush()
	}
	return s.err
}
