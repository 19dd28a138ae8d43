package mqtt_test

import (
	"bytes"
	"context"
	"crypto/md5" //nolint:gosec // protocol digest
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/mqtt"
	"github.com/otafleet/otafleet/internal/protocol"
	"github.com/otafleet/otafleet/internal/testserver"
)

// image is a firmware image stored in a real MinIO.
type image struct {
	client      *minio.Client
	bucket, key string
	size        int64
	md5, sha256 string
}

func storeImage(t *testing.T, ctx context.Context, size int) *image {
	t.Helper()
	srv, err := testserver.StartMinIO(ctx, testserver.MinIOOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	client, err := minio.New(srv.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	img := &image{client: client, bucket: "firmware", key: "a1/mcu/2.0.0.bin", size: int64(size)}
	if err := client.MakeBucket(ctx, img.bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, size)
	_, _ = rand.Read(data)
	m, s := md5.Sum(data), sha256.Sum256(data) //nolint:gosec // protocol digest
	img.md5, img.sha256 = hex.EncodeToString(m[:]), hex.EncodeToString(s[:])
	if _, err := client.PutObject(ctx, img.bucket, img.key, bytes.NewReader(data), img.size,
		minio.PutObjectOptions{ContentType: "application/octet-stream"}); err != nil {
		t.Fatal(err)
	}
	return img
}

// upgrade describes the image with a freshly pre-signed URL, as the engine
// does for every push and every get reply.
func (img *image) upgrade(t *testing.T, ctx context.Context, module string, method protocol.SignMethod) protocol.Upgrade {
	t.Helper()
	u, err := img.client.PresignedGetObject(ctx, img.bucket, img.key, 15*time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	up := protocol.Upgrade{Version: "2.0.0", URL: u.String(), Size: img.size, MD5: img.md5, SignMethod: method,
		Sign: img.md5, Module: module, ExtData: map[string]string{"batch": "ub-1", "_package_udi": `{"ota_notice":"fixes"}`}}
	if method == protocol.SignSHA256 {
		up.Sign = img.sha256
	}
	return up
}

// TestUpgradeEndToEndWithMinIO: the gateway pushes (and answers firmware/get
// with) pre-signed MinIO URLs; simulated devices download, verify, report
// paced progress and inform the new version; a device whose URL signature
// was tampered with reports a download failure.
func TestUpgradeEndToEndWithMinIO(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	img := storeImage(t, ctx, 256<<10)
	b := startMochi(t)

	var gw *runningGateway
	var names []string
	pendingMCU := img.upgrade(t, ctx, "mcu", protocol.SignSHA256)
	rec := newRecorder()
	ready := make(chan struct{})
	rec.onBatch = func(ctx context.Context, msgs []protocol.Message) {
		<-ready
		for _, m := range msgs {
			if m.Kind != protocol.KindFirmwareGet {
				continue
			}
			// The engine's part: answer from its own state, off the handler goroutine.
			var pending *protocol.Upgrade
			if m.DeviceName == names[2] && m.Module == "mcu" {
				pending = &pendingMCU
			}
			go func() {
				if err := gw.PublishGetReply(ctx, m.ProductKey, m.DeviceName, m.ID, pending); err != nil {
					t.Errorf("get reply: %v", err)
				}
			}()
		}
	}
	gw = startGateway(t, b.URL, "operator", rec, nil)
	fleet, err := devicesim.Start(ctx, devicesim.Config{
		Broker: b.URL, ProductKey: pk, Devices: 4, AskOnBoot: true,
		Modules: []devicesim.Module{{Name: "wifi", Version: "1.0.0"}, {Name: "mcu", Version: "1.0.0"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Stop()
	names = fleet.DeviceNames()
	close(ready)
	if err := fleet.WaitInformed(ctx); err != nil {
		t.Fatal(err)
	}

	pushes := map[string]protocol.Upgrade{
		names[0]: img.upgrade(t, ctx, "mcu", protocol.SignSHA256),
		names[1]: img.upgrade(t, ctx, "wifi", protocol.SignMD5),
	}
	tampered := img.upgrade(t, ctx, "mcu", protocol.SignMD5)
	tampered.URL = strings.Replace(tampered.URL, "X-Amz-Signature=", "X-Amz-Signature=0", 1)
	pushes[names[3]] = tampered
	for dn, u := range pushes {
		if err := gw.PublishUpgrade(ctx, pk, dn, u); err != nil {
			t.Fatal(err)
		}
	}

	msgs := rec.waitFor(t, "three new versions and a failure", 2*time.Minute, func(m []protocol.Message) bool {
		failed := false
		for _, x := range m {
			failed = failed || (x.Kind == protocol.KindProgress && x.DeviceName == names[3] && x.Step == protocol.StepDownloadFailed)
		}
		done := 0
		for _, x := range m {
			// The gateway may hand over the last report and the inform in
			// either order: wait for both.
			if x.Kind == protocol.KindProgress && x.Step == protocol.StepDone {
				done++
			}
		}
		return failed && done == 3 && hasVersion(m, names[0], "mcu", "2.0.0") && hasVersion(m, names[1], "wifi", "2.0.0") &&
			hasVersion(m, names[2], "mcu", "2.0.0")
	})
	for _, dn := range names[:3] {
		var steps []protocol.Message
		for _, m := range msgs {
			if m.Kind == protocol.KindProgress && m.DeviceName == dn {
				steps = append(steps, m)
			}
		}
		if len(steps) < 2 || steps[0].Step != 0 || steps[len(steps)-1].Step != 100 {
			t.Fatalf("%s: progress %v, want 0 first and 100 last", dn, steps)
		}
		for i := 1; i < len(steps); i++ {
			// Devices pace reports at 3 s; allow for scheduling between
			// the broker and our receive timestamps.
			if gap := steps[i].ReceivedAt.Sub(steps[i-1].ReceivedAt); gap < 2500*time.Millisecond {
				t.Errorf("%s: reports %d and %d only %v apart", dn, steps[i-1].Step, steps[i].Step, gap)
			}
		}
	}
	if hasVersion(msgs, names[3], "mcu", "2.0.0") {
		t.Fatal("the device with a tampered URL informed the new version")
	}
	if err := fleet.Wait(ctx, func(s devicesim.Summary) bool {
		return s.Outcomes[devicesim.OutcomeSucceeded] == 3 && s.RepliesReceived == 8
	}); err != nil {
		t.Fatal(err)
	}
	s := fleet.Summary()
	if s.InvalidReceived != 0 || s.Downloads != 3 || s.DownloadedBytes != 3*img.size || s.Outcomes[devicesim.OutcomeDownloadFailed] != 1 ||
		s.RepliesReceived != 8 || s.PushesReceived != 3 {
		t.Fatalf("fleet summary:\n%s", s)
	}
	if got := metric(t, gw.reg, "otafleet_mqtt_published_total", "kind", "upgrade", "result", "ok"); got != 3 {
		t.Fatalf("published upgrades = %v", got)
	}
	if got := metric(t, gw.reg, "otafleet_mqtt_published_total", "kind", "firmware_get_reply", "result", "ok"); got != 8 {
		t.Fatalf("published get replies = %v", got)
	}
	if got := metric(t, gw.reg, "otafleet_mqtt_publish_duration_seconds", "kind", "upgrade"); got != 3 {
		t.Fatalf("publish latency observations = %v", got)
	}
	var _ mqtt.Publisher = gw.Gateway
}
