package appapi

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

func progressEvent(t *testing.T, ev sseEvent) ProgressItem {
	t.Helper()
	if ev.Event != EventProgress {
		t.Fatalf("event %+v, want progress", ev)
	}
	var p ProgressItem
	if err := json.Unmarshal([]byte(ev.Data), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStreamSnapshotThenChangesInOrder(t *testing.T) {
	f := newFixture(t, nil)
	s, resp := openStream(t, f.url, f.alice)
	if s == nil {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	snap := s.untilSynced(t)
	if len(snap) != 3 || snap[0].DeviceName != "a1" || snap[2].DeviceName != "s1" || !snap[2].ReadOnly {
		t.Fatalf("snapshot %+v", snap)
	}
	f.eng.change("pk/a1", otav1.TaskQueued, 0)
	f.eng.change("pk/b1", otav1.TaskQueued, 0) // bob's: never on alice's stream
	f.eng.change("pk/s1", otav1.TaskInProgress, 10)
	f.eng.change("pk/a1", otav1.TaskNotified, 0)
	f.eng.change("pk/a1", otav1.TaskInProgress, 50)
	want := []struct {
		dn    string
		state otav1.TaskState
		step  int32
	}{{"a1", otav1.TaskQueued, 0}, {"s1", otav1.TaskInProgress, 10}, {"a1", otav1.TaskNotified, 0}, {"a1", otav1.TaskInProgress, 50}}
	var last uint64
	for i, w := range want {
		ev, ok := s.next(t)
		if !ok {
			t.Fatal("the stream ended")
		}
		p := progressEvent(t, ev)
		id, err := strconv.ParseUint(ev.ID, 10, 64)
		if err != nil || id <= last {
			t.Fatalf("event %d: id %q after %d", i, ev.ID, last)
		}
		last = id
		if p.DeviceName != w.dn || p.State != w.state || p.Step != w.step || p.ReadOnly != (w.dn == "s1") {
			t.Fatalf("event %d: %+v, want %+v", i, p, w)
		}
	}
	if n := counterValue(t, f.reg, "otafleet_appapi_streams", nil); n != 1 {
		t.Fatalf("%v open streams", n)
	}
}

// TestStreamOverflowEndsIt fills the socket by not reading, so the
// stream's buffer overflows; the client then gets the events before the
// gap, in order, and an overflow event.
func TestStreamOverflowEndsIt(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.StreamBuffer = 4 })
	f.eng.mu.Lock()
	f.eng.tasks[device{"pk", "a1"}].Message = strings.Repeat("m", 4000)
	f.eng.mu.Unlock()
	req, _ := http.NewRequest(http.MethodGet, f.url+PathProgressStream, nil)
	req.Header.Set("Authorization", "Bearer "+f.alice)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	br := bufio.NewReaderSize(resp.Body, 1<<16)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "event: synced\n" {
			break
		}
	}
	if _, err := br.ReadString('\n'); err != nil { // the synced event's data
		t.Fatal(err)
	}
	// 20,000 events of 4 KB are far more than the socket buffers hold.
	for i := range int32(20000) {
		f.eng.change("pk/a1", otav1.TaskInProgress, i)
		if i%64 == 63 && counterValue(t, f.reg, "otafleet_appapi_stream_overflows_total", nil) == 1 {
			break
		}
	}
	if n := counterValue(t, f.reg, "otafleet_appapi_stream_overflows_total", nil); n != 1 {
		t.Fatalf("%v overflows", n)
	}
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 1<<16), 1<<16)
	next, ended, event := int32(0), false, ""
	for sc.Scan() {
		line := sc.Text()
		if ended {
			continue
		}
		if name, ok := strings.CutPrefix(line, "event: "); ok {
			event = name
		}
		switch {
		case event == EventOverflow:
			ended = true
		case event == EventProgress && strings.HasPrefix(line, "data: "):
			var p ProgressItem
			if err := json.Unmarshal([]byte(line[len("data: "):]), &p); err != nil {
				t.Fatal(err)
			}
			if p.Step != next {
				t.Fatalf("step %d after %d: events lost without an overflow", p.Step, next-1)
			}
			next++
		}
	}
	if !ended {
		t.Fatalf("no overflow event after %d events", next)
	}
}

func TestStreamEndsWhenTokenExpires(t *testing.T) {
	// The server's clock is just before the token's expiry.
	f := newFixture(t, func(c *Config) { c.Now = func() time.Time { return time.Now().Add(time.Hour - time.Second) } })
	s, resp := openStream(t, f.url, f.alice)
	if s == nil {
		t.Fatalf("status %d", resp.StatusCode)
	}
	s.untilSynced(t)
	ev, ok := s.next(t)
	if !ok || ev.Event != EventExpired {
		t.Fatalf("event %+v, ok %v; want expired", ev, ok)
	}
	if _, ok := s.next(t); ok {
		t.Fatal("the stream goes on after the token expired")
	}
}

func TestStreamAuthAndLimit(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxStreamsPerUser = 1 })
	if s, resp := openStream(t, f.url, "bad"); s != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a bad token opened a stream (%d)", resp.StatusCode)
	}
	s, _ := openStream(t, f.url, f.alice)
	s.untilSynced(t)
	if s2, resp := openStream(t, f.url, f.alice); s2 != nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a second stream for one user: %d", resp.StatusCode)
	}
	bob, _ := openStream(t, f.url, hmacToken(t, claims("bob", "pk/b1")))
	if snap := bob.untilSynced(t); len(snap) != 1 || snap[0].DeviceName != "b1" {
		t.Fatalf("bob's snapshot %+v", snap)
	}
}
