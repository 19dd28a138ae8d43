package testserver

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// The operator's gateway resumes its persistent session whenever a manager
// restarts or a product changes owner, while devices keep publishing: the
// broker must deliver every QoS 1 message published meanwhile. Mosquitto
// does. (Mochi v2.7.9 does not: the same test lost 44 of 40,000 messages
// over 40 resumptions, those published while it moved the session to the
// new connection; see docs/brokers.md.)
func TestMosquittoPersistentSessionKeepsMessagesAcrossResumes(t *testing.T) {
	b, err := StartMosquitto(t.Context(), MosquittoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Stop() }()
	const total, resumes = 20000, 20
	var mu sync.Mutex
	got := map[int]bool{}
	resume := func() paho.Client {
		o := paho.NewClientOptions().AddBroker(b.URL).SetClientID("gateway").SetCleanSession(false).SetAutoReconnect(false)
		o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			n, _ := strconv.Atoi(string(m.Payload()))
			mu.Lock()
			got[n] = true
			mu.Unlock()
		})
		c := paho.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect: %v", tok.Error())
		}
		if tok := c.Subscribe("devices/#", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe: %v", tok.Error())
		}
		return c
	}
	gw := resume()
	pub := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL).SetClientID("devices"))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer pub.Disconnect(0)
	var sent atomic.Int64
	go func() {
		for i := range total {
			pub.Publish("devices/d", 1, false, strconv.Itoa(i)).Wait()
			sent.Add(1)
		}
	}()
	// Resume the session every total/resumes messages, while they flow.
	for i := 1; i <= resumes; i++ {
		if err := poll(t, func() bool { return sent.Load() >= int64(i*total/(resumes+1)) }); err != nil {
			t.Fatalf("publishing stalled at %d: %v", sent.Load(), err)
		}
		gw.Disconnect(0)
		gw = resume()
	}
	defer gw.Disconnect(0)
	err = poll(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == total
	})
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		var missing []int
		for i := range total {
			if !got[i] && len(missing) < 20 {
				missing = append(missing, i)
			}
		}
		t.Fatalf("received %d of %d messages across %d resumptions; missing, first: %v", len(got), total, resumes, missing)
	}
}

// poll waits up to 30 s for cond.
func poll(t *testing.T, cond func() bool) error {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("not within 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}
