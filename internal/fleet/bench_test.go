package fleet

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-logr/logr"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/download"
	"github.com/otafleet/otafleet/internal/protocol"
	"github.com/otafleet/otafleet/internal/storage"
)

// memEngine is an engine with n devices of one product in a running batch,
// without an API server: the benchmarks measure the in-memory hot paths.
func memEngine(b testing.TB, n int) (*Engine, []string) {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("dev-%06d", i)
	}
	e := memFleet(names, func(int) string { return "1.0.0" })
	if _, err := e.Upsert(memSpec()); err != nil {
		b.Fatal(err)
	}
	return e, names
}

// memFleet is an engine without an API server that holds one product
// ("pk") whose devices have informed version(i) of module "default".
func memFleet(names []string, version func(i int) string) *Engine {
	e := New(nil, nil, nil, staticSigner{}, Options{}, logr.Discard())
	e.ready = true
	close(e.readyCh)
	p := &otav1.Product{Spec: otav1.ProductSpec{ProductKey: "pk"}}
	p.Name, p.Namespace, p.UID = "p", "ns", "uid"
	e.SyncProduct(p)
	msgs := make([]protocol.Message, len(names))
	for i, name := range names {
		msgs[i] = protocol.Message{Kind: protocol.KindInform, ProductKey: "pk", DeviceName: name, Module: "default", Version: version(i)}
	}
	e.HandleBatch(context.Background(), msgs)
	return e
}

// memSpec is a batch of memFleet's product to 2.0.0.
func memSpec() Spec {
	return Spec{Ref: otav1.CampaignReference{Kind: otav1.KindUpgradeBatch, Name: "b"}, Namespace: "ns",
		ProductKey: "pk", Module: "default", Target: "2.0.0", RatePerMinute: 10000, Timeout: time.Hour,
		Image: Image{Bucket: "b", Key: "k", Size: 1, MD5: "0123456789abcdef0123456789abcdef"}}
}

// BenchmarkSelect100k measures selecting 100,000 devices for a batch.
func BenchmarkSelect100k(b *testing.B) {
	for b.Loop() {
		memEngine(b, 100000)
	}
}

// BenchmarkApplyProgress measures applying one progress message to the
// fleet state, in batches of 512 as the gateway delivers them.
func BenchmarkApplyProgress(b *testing.B) {
	const n = 100000
	e, names := memEngine(b, n)
	e.mu.Lock()
	now := e.now()
	for _, c := range e.campaigns {
		for _, t := range c.tasks {
			e.setState(t, otav1.TaskInProgress, now)
		}
	}
	e.mu.Unlock()
	batch := make([]protocol.Message, 512)
	b.ResetTimer()
	i := 0
	for b.Loop() {
		for j := range batch {
			batch[j] = protocol.Message{Kind: protocol.KindProgress, ProductKey: "pk", DeviceName: names[i%n],
				Module: "default", Step: protocol.Step(i % 100)}
			i++
		}
		e.HandleBatch(context.Background(), batch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(i), "ns/message")
}

// BenchmarkCollectPushes measures taking the next devices to push.
func BenchmarkCollectPushes(b *testing.B) {
	e, _ := memEngine(b, 100000)
	e.opts.IgnoreCampaignRate = true
	var c *campaign
	for _, c = range e.campaigns {
	}
	now := time.Now()
	pushed := 0
	b.ResetTimer()
	for b.Loop() {
		e.mu.Lock()
		if len(c.queue) == 0 {
			for _, t := range c.tasks {
				e.setState(t, otav1.TaskQueued, now)
				c.enqueue(t)
			}
		}
		out := e.collectPushes(c, now, nil)
		pushed += len(out)
		e.mu.Unlock()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(max(pushed, 1)), "ns/push")
}

// BenchmarkBuildPush measures what each push costs before it is published:
// a download URL (the download service's, as by default, or an S3
// pre-signed one), its check, and the encoding.
func BenchmarkBuildPush(b *testing.B) {
	o := &outgoing{image: Image{Bucket: "otafleet-firmware", Key: "_img/2f4f6d2e-58b1-4a37-9d5e-3c1f0b7a9e21.bin", Size: 432945,
		MD5: "93230c3bde425a9d7ed2b0a2b3e1a8c1", SignMethod: otav1.SignMethodMD5}, module: "mcu", version: "2.0.0"}
	st, err := storage.New(storage.Config{Endpoint: "minio.internal:9000", PublicURL: "https://firmware.example.com",
		AccessKey: "AKIAEXAMPLE", SecretKey: "secretsecretsecret", Region: "us-east-1"})
	if err != nil {
		b.Fatal(err)
	}
	dl, err := download.NewSigner("https://firmware.example.com", []byte("0123456789abcdef0123456789abcdef"), 15*time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	for name, sign := range map[string]func() (string, error){
		"download-service": func() (string, error) { return dl.URL(o.image.Key, time.Now()) },
		"s3-presigned": func() (string, error) {
			u, err := st.PresignGet(context.Background(), o.image.Bucket, o.image.Key, 15*time.Minute)
			if err != nil {
				return "", err
			}
			return u.String(), nil
		},
	} {
		b.Run(name, func(b *testing.B) {
			s := sender{longURLs: name == "s3-presigned"}
			for b.Loop() {
				u, err := sign()
				if err == nil {
					err = s.checkURL(u)
				}
				if err != nil {
					b.Fatal(err)
				}
				if _, err := protocol.EncodePush(1, *upgradeMessage(o, u)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
