package devicesim_test

import (
	"context"
	"crypto/md5" //nolint:gosec // protocol digest
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/otafleet/otafleet/internal/protocol"
	"github.com/otafleet/otafleet/internal/testserver"
)

const pk = "a1SimTest"

// backend is a bare MQTT client standing in for the operator: it records
// every decoded device message and publishes cloud → device payloads.
type backend struct {
	t      *testing.T
	client paho.Client

	mu      sync.Mutex
	msgs    []protocol.Message
	refused int
	changed chan struct{}
}

func startBroker(t *testing.T) *testserver.Mochi {
	t.Helper()
	return startBrokerWith(t, testserver.MochiOptions{})
}

func newBackend(t *testing.T, url string) *backend {
	t.Helper()
	be := &backend{t: t, changed: make(chan struct{})}
	o := paho.NewClientOptions().AddBroker(url).SetClientID("backend-" + t.Name()).SetOrderMatters(true)
	be.client = paho.NewClient(o)
	if tok := be.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("backend connect: %v", tok.Error())
	}
	filters := map[string]byte{}
	for _, f := range protocol.DeviceFilters(pk) {
		filters[f] = 1
	}
	tok := be.client.SubscribeMultiple(filters, func(_ paho.Client, m paho.Message) {
		msg, err := protocol.Decode(m.Topic(), m.Payload())
		be.mu.Lock()
		defer be.mu.Unlock()
		if err != nil {
			be.refused++
		} else {
			be.msgs = append(be.msgs, msg)
		}
		close(be.changed)
		be.changed = make(chan struct{})
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("backend subscribe: %v", tok.Error())
	}
	t.Cleanup(func() { be.client.Disconnect(50) })
	return be
}

// waitFor blocks until cond holds for the recorded messages.
func (be *backend) waitFor(what string, cond func([]protocol.Message) bool) []protocol.Message {
	be.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		be.mu.Lock()
		msgs, ch := append([]protocol.Message(nil), be.msgs...), be.changed
		be.mu.Unlock()
		if cond(msgs) {
			return msgs
		}
		select {
		case <-ch:
		case <-deadline:
			be.t.Fatalf("timed out waiting for %s; have %d messages", what, len(msgs))
		}
	}
}

func (be *backend) publish(topic string, payload []byte) {
	be.t.Helper()
	if tok := be.client.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		be.t.Fatalf("backend publish: %v", tok.Error())
	}
}

func (be *backend) push(dn string, u protocol.Upgrade) {
	be.t.Helper()
	payload, err := protocol.EncodePush(time.Now().UnixMilli(), u)
	if err != nil {
		be.t.Fatal(err)
	}
	be.publish(protocol.UpgradeTopic(pk, dn), payload)
}

// of filters recorded messages.
func of(msgs []protocol.Message, kind protocol.Kind, dn string) []protocol.Message {
	var out []protocol.Message
	for _, m := range msgs {
		if m.Kind == kind && (dn == "" || m.DeviceName == dn) {
			out = append(out, m)
		}
	}
	return out
}

// informedVersion reports whether dn informed version for module.
func informedVersion(msgs []protocol.Message, dn, module, version string) bool {
	for _, m := range of(msgs, protocol.KindInform, dn) {
		if m.Module == module && m.Version == version {
			return true
		}
	}
	return false
}

// imageServer serves one image and returns an upgrade describing it.
func imageServer(t *testing.T, size int, method protocol.SignMethod) (protocol.Upgrade, *httptest.Server) {
	t.Helper()
	img := make([]byte, size)
	for i := range img {
		img[i] = byte(i * 7)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/fw/image.bin" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(img)
	}))
	t.Cleanup(srv.Close)
	m := md5.Sum(img) //nolint:gosec // protocol digest
	s := sha256.Sum256(img)
	u := protocol.Upgrade{Version: "2.0.0", URL: srv.URL + "/fw/image.bin?X-Amz-Expires=900&X-Amz-Signature=x",
		Size: int64(size), MD5: hex.EncodeToString(m[:]), SignMethod: method}
	u.Sign = u.MD5
	if method == protocol.SignSHA256 {
		u.Sign = hex.EncodeToString(s[:])
	}
	return u, srv
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func steps(msgs []protocol.Message) string {
	s := ""
	for _, m := range msgs {
		s += fmt.Sprintf("%d ", m.Step)
	}
	return s
}
