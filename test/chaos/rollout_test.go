package chaos

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/lab"
)

const (
	ns         = "chaos"
	productKey = "chaosplug"
	product    = "plug"
)

// Every rollout: waves with pauses, two retries of failed devices, a
// timeout that ends devices gone silent. Injected failures draw anew on
// every attempt, so retries succeed most of the time.
var (
	retry       = otav1.RetryPolicy{Count: 2, Interval: &metav1.Duration{Duration: 2 * time.Second}}
	taskTimeout = time.Minute
)

// wavesOf makes waves of the cumulative percentages, each but the last
// followed by a 2 s pause.
func wavesOf(percents []int32) []otav1.Wave {
	var out []otav1.Wave
	for i, p := range percents {
		w := otav1.Wave{Percent: p}
		if i < len(percents)-1 {
			w.Pause = &otav1.WavePause{Duration: &metav1.Duration{Duration: 2 * time.Second}}
		}
		out = append(out, w)
	}
	return out
}

// createProduct creates the Product and waits until the manager owns its
// key, so that the devices' informs are taken in.
func (r *rig) createProduct(ctx context.Context) *otav1.Product {
	if err := r.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		r.t.Fatal(err)
	}
	p := &otav1.Product{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: product}, Spec: otav1.ProductSpec{ProductKey: productKey}}
	if err := r.c.Create(ctx, p); err != nil {
		r.t.Fatal(err)
	}
	err := lab.Poll(ctx, 2*time.Minute, func() (bool, error) {
		err := r.c.Get(ctx, client.ObjectKeyFromObject(p), p)
		return err == nil && apimeta.IsStatusConditionTrue(p.Status.Conditions, otav1.ConditionReady), nil
	})
	if err != nil {
		r.t.Fatalf("the Product never became Ready: %v (%+v)", err, p.Status.Conditions)
	}
	return p
}

// simulator is devicesim running as its own process; it writes its record
// of every device when it stops.
type simulator struct {
	p       *proc
	record  string
	summary string
}

// startSimulator runs n sdk3 devices with injected download and flash
// failures, and waits until the inventory holds every one of them.
func (r *rig) startSimulator(ctx context.Context, n int, seed int64) *simulator {
	s := &simulator{record: filepath.Join(r.dir, "devices.jsonl"), summary: filepath.Join(r.dir, "devicesim.json")}
	out, err := os.Create(s.summary)
	if err != nil {
		r.t.Fatal(err)
	}
	defer out.Close()
	s.p, err = startProc("devicesim", filepath.Join(r.dir, "devicesim.log"), out, nil, r.bins.devicesim,
		"--broker", r.broker.URL, "--product", productKey, "--devices", strconv.Itoa(n), "--connections", "4",
		"--profile", "sdk3", "--hosts", downloadHost+"="+r.dlAddr, "--progress-interval", "300ms", "--flash", "300ms",
		"--fail-download", "0.06", "--fail-flash", "0.06", "--transient", "--seed", strconv.FormatInt(seed, 10),
		"--report-every", "5s", "--json", "--record", s.record)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = s.p.kill() })
	err = lab.Poll(ctx, 3*time.Minute, func() (bool, error) {
		if s.p.exited() {
			return false, fmt.Errorf("devicesim exited: %v", s.p.err)
		}
		got, err := inventoryCount(ctx, r.c)
		return err == nil && got == n, nil
	})
	if err != nil {
		r.t.Fatalf("the inventory never held the %d devices: %v", n, err)
	}
	return s
}

func inventoryCount(ctx context.Context, c client.Client) (int, error) {
	var list otav1.DeviceSliceList
	if err := c.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{otav1.LabelProductKey: productKey}); err != nil {
		return 0, err
	}
	n := 0
	for _, s := range list.Items {
		n += len(s.Devices)
	}
	return n, nil
}

// stop ends the simulator with SIGTERM and reads its record and summary.
func (s *simulator) stop() ([]devicesim.DeviceStatus, devicesim.Summary, error) {
	var sum devicesim.Summary
	if err := s.p.stop(time.Minute); err != nil {
		return nil, sum, fmt.Errorf("devicesim: %w", err)
	}
	data, err := os.ReadFile(s.summary)
	if err != nil {
		return nil, sum, err
	}
	if err := json.Unmarshal(data, &sum); err != nil {
		return nil, sum, fmt.Errorf("devicesim's summary: %w", err)
	}
	f, err := os.Open(s.record)
	if err != nil {
		return nil, sum, err
	}
	defer f.Close()
	var out []devicesim.DeviceStatus
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var d devicesim.DeviceStatus
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			return nil, sum, fmt.Errorf("devicesim's record: %w", err)
		}
		out = append(out, d)
	}
	return out, sum, sc.Err()
}

// pushFirmware creates the Firmware of version and uploads an image through
// the pre-signed URL the manager publishes, as `kubectl ota firmware push`
// does, then waits until it is Ready with the image's digest. The manager
// may be down meanwhile; upload, when set, is a fault injected right after
// the upload.
func (r *rig) pushFirmware(ctx context.Context, version string, upload *uploadFault) (*otav1.Firmware, error) {
	return r.pushProductFirmware(ctx, ns, product, version, upload)
}

// pushProductFirmware is pushFirmware for the Product product in namespace.
func (r *rig) pushProductFirmware(ctx context.Context, namespace, product, version string, upload *uploadFault) (*otav1.Firmware, error) {
	fw := &otav1.Firmware{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: product + "-" + version}, Spec: otav1.FirmwareSpec{
		Product: product, Version: version, SignMethod: otav1.SignMethodSHA256, VerificationRequired: ptr.To(false),
		Source: otav1.FirmwareSource{Upload: &otav1.UploadSource{}}}}
	if err := r.c.Create(ctx, fw); err != nil {
		return nil, err
	}
	key := client.ObjectKeyFromObject(fw)
	err := lab.Poll(ctx, 3*time.Minute, func() (bool, error) {
		return r.c.Get(ctx, key, fw) == nil && fw.Status.Upload != nil && fw.Status.Upload.URL != "", nil
	})
	if err != nil {
		return nil, fmt.Errorf("no upload URL for %s: %w", fw.Name, err)
	}
	image := make([]byte, 16<<10)
	_, _ = rand.Read(image)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, fw.Status.Upload.URL, bytes.NewReader(image))
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("uploading %s: %s", fw.Name, resp.Status)
	}
	want := sha256.Sum256(image)
	if upload != nil {
		if err := r.injectDuringUpload(ctx, upload, fw, hex.EncodeToString(want[:])); err != nil {
			return nil, err
		}
	}
	err = lab.Poll(ctx, 3*time.Minute, func() (bool, error) {
		return r.c.Get(ctx, key, fw) == nil && apimeta.IsStatusConditionTrue(fw.Status.Conditions, otav1.ConditionReady), nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s never became Ready: %w", fw.Name, err)
	}
	if a := fw.Status.Artifact; a == nil || a.SHA256 != hex.EncodeToString(want[:]) || a.Size != int64(len(image)) {
		return nil, fmt.Errorf("%s is Ready with artifact %+v; the image uploaded has sha256 %x and %d bytes", fw.Name, a, want, len(image))
	}
	return fw, nil
}

// createBatch rolls fw out to every device of the product at rate a minute,
// in waves.
func (r *rig) createBatch(ctx context.Context, fw *otav1.Firmware, rate int, waves []int32) (*otav1.UpgradeBatch, error) {
	ub := &otav1.UpgradeBatch{ObjectMeta: metav1.ObjectMeta{Namespace: fw.Namespace, Name: "to-" + fw.Spec.Version}, Spec: otav1.UpgradeBatchSpec{
		Firmware: fw.Name, RatePerMinute: int32(rate), Waves: wavesOf(waves), Retry: retry.DeepCopy(),
		Timeout: &metav1.Duration{Duration: taskTimeout}}}
	return ub, r.c.Create(ctx, ub)
}

// finished reports whether a batch reached a final phase.
func finished(ub *otav1.UpgradeBatch) bool {
	p := ub.Status.Phase
	return p == otav1.BatchCompleted || p == otav1.BatchAborted || p == otav1.BatchCanceled
}
