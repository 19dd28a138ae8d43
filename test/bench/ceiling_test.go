package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/mqtt"
	"github.com/otafleet/otafleet/internal/protocol"
	"github.com/otafleet/otafleet/internal/storage"
	"github.com/otafleet/otafleet/internal/testserver"
)

// startBroker starts a fresh broker of the kind the rollout used.
func startBroker(b *testing.B, queue int32, mosquitto bool) (url string, stop func()) {
	ctx := context.Background()
	if mosquitto {
		broker, err := testserver.StartMosquitto(ctx, testserver.MosquittoOptions{})
		must(b, err)
		return broker.URL, func() { _ = broker.Stop() }
	}
	broker, err := testserver.StartMochi(testserver.MochiOptions{MaxClientWritesPending: queue})
	must(b, err)
	return broker.URL, func() { _ = broker.Stop() }
}

// brokerAlone measures the floor the broker and the simulator set: the same
// n pushes and the devices' answers through a fresh broker of the same
// kind, with a backend that does nothing but publish and count. It returns
// the time and the messages carried (pushes plus every device message).
func brokerAlone(b *testing.B, n int, queue int32, mosquitto bool) (time.Duration, int64) {
	ctx := context.Background()
	url, stopBroker := startBroker(b, queue, mosquitto)
	defer stopBroker()
	const pk = "ceiling"
	fleet, err := devicesim.Start(ctx, devicesim.Config{Broker: url, ProductKey: pk, Devices: n,
		Mode: devicesim.Multiplexed, Instant: true, WildcardSubscriptions: true, ClientIDPrefix: "ceiling-"})
	must(b, err)
	defer fleet.Stop()
	must(b, fleet.WaitInformed(ctx))

	var done atomic.Int64
	finished := make(chan struct{})
	opts := paho.NewClientOptions().AddBroker(url).SetClientID("ceiling-backend").SetOrderMatters(false)
	mqtt.UseBufferedConnections(opts) // as the operator's gateway does
	backend := paho.NewClient(opts)
	if tok := backend.Connect(); tok.Wait() && tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	defer backend.Disconnect(100)
	filters := map[string]byte{}
	for _, f := range protocol.DeviceFilters(pk) {
		filters[f] = 1
	}
	if tok := backend.SubscribeMultiple(filters, func(_ paho.Client, m paho.Message) {
		if strings.Contains(m.Topic(), "/inform/") && strings.Contains(string(m.Payload()), `"2.0.0"`) {
			if done.Add(1) == int64(n) {
				close(finished)
			}
		}
	}); tok.Wait() && tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	up := protocol.Upgrade{Version: "2.0.0", URL: "http://storage.invalid/fw.bin?X-Amz-Signature=0", Size: 1,
		MD5: "0123456789abcdef0123456789abcdef", SignMethod: protocol.SignMD5, Sign: "0123456789abcdef0123456789abcdef"}
	names := fleet.DeviceNames()
	published := fleet.Summary().Published
	start := time.Now()
	publishAll(b, backend, pk, names, up)
	select {
	case <-finished:
	case <-time.After(5 * time.Minute):
		b.Fatalf("broker alone: %d of %d devices answered", done.Load(), n)
	}
	return time.Since(start), int64(n) + fleet.Summary().Published - published
}

// rawPublish measures the broker's raw rate: one client publishes count
// QoS 1 messages of a device report's size (64 in flight, as the engine
// sends) and another receives them.
func rawPublish(b *testing.B, count int, queue int32, mosquitto bool) float64 {
	url, stopBroker := startBroker(b, queue, mosquitto)
	defer stopBroker()
	connect := func(id string) paho.Client {
		o := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetOrderMatters(false)
		mqtt.UseBufferedConnections(o)
		c := paho.NewClient(o)
		if tok := c.Connect(); tok.Wait() && tok.Error() != nil {
			b.Fatal(tok.Error())
		}
		return c
	}
	sub, pub := connect("raw-sub"), connect("raw-pub")
	defer sub.Disconnect(100)
	defer pub.Disconnect(100)
	var got atomic.Int64
	all := make(chan struct{})
	if tok := sub.Subscribe("raw/#", 1, func(paho.Client, paho.Message) {
		if got.Add(1) == int64(count) {
			close(all)
		}
	}); tok.Wait() && tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	payload := []byte(strings.Repeat("x", 300))
	work := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				pub.Publish(fmt.Sprintf("raw/%d", i%1000), 1, false, payload).WaitTimeout(30 * time.Second)
			}
		}()
	}
	for i := range count {
		work <- i
	}
	close(work)
	wg.Wait()
	select {
	case <-all:
	case <-time.After(2 * time.Minute):
		b.Fatalf("raw publish: %d of %d messages arrived", got.Load(), count)
	}
	return float64(count) / time.Since(start).Seconds()
}

func publishAll(b *testing.B, c paho.Client, pk string, names []string, up protocol.Upgrade) {
	work := make(chan string)
	var wg sync.WaitGroup
	for range 64 { // as many publishes in flight as the engine has
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				payload, err := protocol.EncodePush(time.Now().UnixMilli(), up)
				if err != nil {
					b.Error(err)
					return
				}
				tok := c.Publish(protocol.UpgradeTopic(pk, name), 1, false, payload)
				tok.WaitTimeout(30 * time.Second)
			}
		}()
	}
	for _, n := range names {
		work <- n
	}
	close(work)
	wg.Wait()
}

// apiAlone measures the floor the API server sets: as many slice writes as
// the rollout made (creates of n/100 UpgradeSlices, then merge patches of
// whole task lists), by as many workers as the engine uses.
func apiAlone(b *testing.B, n, writes int) time.Duration {
	ctx := context.Background()
	cp, err := testserver.StartControlPlane()
	must(b, err)
	defer func() { _ = cp.Stop() }()
	c, ns := cp.Client, "ceiling"
	must(b, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	slices := (n + otav1.MaxDevicesPerSlice - 1) / otav1.MaxDevicesPerSlice
	tasks := make(otav1.TaskList, otav1.MaxDevicesPerSlice)
	for i := range tasks {
		tasks[i] = otav1.DeviceTask{Device: fmt.Sprintf("dev-%06d", i), State: otav1.TaskSucceeded, Attempt: 1,
			FromVersion: "1.0.0", Step: 100, Wave: 1, Updated: time.Now().Unix()}
	}
	patch, _ := json.Marshal(map[string]any{"tasks": tasks})
	jobs := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				name := fmt.Sprintf("ceiling-%d", i%slices)
				var err error
				if i < slices {
					s := &otav1.UpgradeSlice{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
						Campaign:   otav1.CampaignReference{Kind: otav1.KindUpgradeBatch, Name: "ceiling"},
						ProductKey: "ceiling", Module: "default", Tasks: tasks}
					err = c.Create(ctx, s)
				} else {
					s := &otav1.UpgradeSlice{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
					err = c.Patch(ctx, s, client.RawPatch(types.MergePatchType, patch))
				}
				if err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := range max(writes, slices) {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return time.Since(start)
}

// storageAlone measures the floor MinIO sets for the downloads variant: n
// GETs of a 4 KiB image, each through its own pre-signed URL as devices
// get them, with 256 at a time.
func storageAlone(b *testing.B, n int) time.Duration {
	ctx := context.Background()
	srv, err := testserver.StartMinIO(ctx, testserver.MinIOOptions{})
	must(b, err)
	defer func() { _ = srv.Stop() }()
	store, err := storage.New(storage.Config{Endpoint: srv.Endpoint, Insecure: true, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	must(b, err)
	const bucket, key = "ceiling", "fw.bin"
	must(b, store.EnsureBucket(ctx, bucket))
	_, err = store.Put(ctx, bucket, key, bytes.NewReader(make([]byte, 4096)), 4096, "application/octet-stream")
	must(b, err)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	work := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for range 256 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				u, err := store.PresignGet(ctx, bucket, key, 15*time.Minute)
				if err != nil {
					b.Error(err)
					return
				}
				resp, err := hc.Get(u.String())
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("GET: %s", resp.Status)
					return
				}
			}
		}()
	}
	for range n {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	return time.Since(start)
}
