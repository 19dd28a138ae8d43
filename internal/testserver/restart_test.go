package testserver

import (
	"bytes"
	"context"
	"io"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// A persistent broker stopped cleanly keeps an offline session's
// subscription and the QoS 1 message queued for it; a broker without
// persistence that is killed forgets both.
func TestMosquittoRestartKeepsPersistedSession(t *testing.T) {
	for _, tc := range []struct {
		persist bool
		sig     syscall.Signal
		want    bool
	}{{true, syscall.SIGTERM, true}, {false, syscall.SIGKILL, false}} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			ctx := t.Context()
			b, err := StartMosquitto(ctx, MosquittoOptions{Persistence: tc.persist})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Stop()
			got := make(chan string, 1)
			sub := persistentClient(t, b.URL, func(m paho.Message) { got <- string(m.Payload()) })
			if tok := sub.Subscribe("/t/queued", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("subscribe: %v", tok.Error())
			}
			sub.Disconnect(100) // offline: the broker queues for the session
			pub := persistentClient(t, b.URL, nil)
			if tok := pub.Publish("/t/queued", 1, false, "kept"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("publish: %v", tok.Error())
			}
			pub.Disconnect(100)
			if err := b.Halt(tc.sig); err != nil {
				t.Fatal(err)
			}
			if err := b.Restart(ctx); err != nil {
				t.Fatal(err)
			}
			persistentClient(t, b.URL, func(m paho.Message) { got <- string(m.Payload()) })
			select {
			case m := <-got:
				if !tc.want || m != "kept" {
					t.Fatalf("got %q after the restart; want it: %v", m, tc.want)
				}
			case <-time.After(3 * time.Second): // the broker sends a queued message at once on connect
				if tc.want {
					t.Fatal("the queued message did not survive the restart")
				}
			}
		})
	}
}

// persistentClient connects with a fixed client ID and a persistent
// session; every message goes to onMsg.
func persistentClient(t *testing.T, url string, onMsg func(paho.Message)) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(url).SetClientID("persist-" + t.Name()).SetCleanSession(false).
		SetConnectTimeout(5 * time.Second)
	if onMsg == nil {
		o.SetClientID("pub-" + t.Name()).SetCleanSession(true)
	} else {
		o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { onMsg(m) })
	}
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", url, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// MinIO halted and restarted serves what it stored before, at the same
// address with the same credentials.
func TestMinIORestartKeepsData(t *testing.T) {
	ctx := t.Context()
	m, err := StartMinIO(ctx, MinIOOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	c, err := minio.New(m.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(m.AccessKey, m.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.MakeBucket(ctx, "kept", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, "kept", "o", bytes.NewReader([]byte("image")), 5, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := m.Halt(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := m.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	obj, err := c.GetObject(ctx, "kept", "o", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if data, err := io.ReadAll(obj); err != nil || string(data) != "image" {
		t.Fatalf("after the restart: %q, %v", data, err)
	}
}

// kube-apiserver stopped and started again keeps its address, its
// certificates (so existing clients still work) and etcd's data.
func TestAPIServerRestartKeepsClientsAndData(t *testing.T) {
	cp, err := StartControlPlane()
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Stop()
	ctx := context.Background()
	ns := &corev1.Namespace{}
	ns.Name = "kept"
	if err := cp.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if err := cp.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(ns), ns); err == nil {
		t.Fatal("the API server answered while stopped")
	}
	if err := cp.StartAPIServer(); err != nil {
		t.Fatal(err)
	}
	if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(ns), ns); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
}
