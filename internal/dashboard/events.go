package dashboard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

const (
	// minPush spaces the pushes of one stream: a rollout changes its
	// slices many times a second, and a page needs a few frames a second.
	minPush = 250 * time.Millisecond
	// keepAlive keeps proxies and the browser from closing an idle stream.
	keepAlive = 20 * time.Second
)

// events streams a view over Server-Sent Events: the whole view at once,
// then again after every change that alters it.
// ?view=products|firmwares|batch&name=<batch>.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	view, ok := s.viewFor(r)
	if !ok {
		http.Error(w, "unknown view", http.StatusBadRequest)
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	var last []byte
	ping := time.NewTicker(keepAlive)
	defer ping.Stop()
	for {
		// Take the change channel before building the view, so a change
		// made while building is not missed.
		changed := s.watch.wait()
		data := renderEvent(view)
		if !bytes.Equal(data, last) {
			if _, err := w.Write(data); err != nil {
				return
			}
			fl.Flush()
			last = data
		}
		if !s.waitChange(r, changed, ping, w, fl) {
			return
		}
	}
}

// waitChange waits for the next change (at least minPush after the last
// push), writing keep-alives meanwhile; false when the page went away.
func (s *Server) waitChange(r *http.Request, changed <-chan struct{}, ping *time.Ticker, w http.ResponseWriter, fl http.Flusher) bool {
	for {
		select {
		case <-r.Context().Done():
			return false
		case <-ping.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return false
			}
			fl.Flush()
		case <-changed:
			t := time.NewTimer(minPush)
			defer t.Stop()
			select {
			case <-r.Context().Done():
				return false
			case <-t.C:
				return true
			}
		}
	}
}

func (s *Server) viewFor(r *http.Request) (func() (any, error), bool) {
	switch r.URL.Query().Get("view") {
	case "products":
		return s.productsView, true
	case "firmwares":
		return s.firmwaresView, true
	case "batch":
		name := r.URL.Query().Get("name")
		return func() (any, error) { return s.batchView(name) }, name != ""
	}
	return nil, false
}

// renderEvent encodes a view, or the error reading it (a batch deleted
// while its page is open), as one SSE message.
func renderEvent(view func() (any, error)) []byte {
	v, err := view()
	if err != nil {
		v = map[string]string{"error": err.Error()}
	}
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	return append(append([]byte("data: "), b...), '\n', '\n')
}
