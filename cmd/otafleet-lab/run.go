package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/lab"
)

const (
	namespace  = "demo"
	productKey = "a1SmartPlug"
)

func run(ctx context.Context, c config) error {
	dir, cleanup, err := dataDir(c)
	if err != nil {
		return err
	}
	defer cleanup()
	say("Starting kube-apiserver, etcd, an MQTT broker and MinIO (the first run builds them from source: 15-20 minutes on 2 cores)")
	start := time.Now()
	opts := labOptions(c, dir)
	logPath, err := observe(c, dir, &opts)
	if err != nil {
		return err
	}
	say("Manager logs go to %s (--log-level %s)", logPath, c.logLevel)
	l, err := lab.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer func() {
		say("Stopping everything")
		l.Stop()
	}()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := l.ControlPlane.WriteKubeconfig(kubeconfig); err != nil {
		return err
	}
	say("Control plane, broker (%s) and storage (%s) up in %s", l.Broker.Address, l.Storage.Endpoint, time.Since(start).Round(time.Second))
	say("Metrics: curl -s http://%s/metrics | grep ^otafleet_", opts.MetricsAddr)
	startDashboard(ctx, l)

	fleet, err := bootFleet(ctx, l, c)
	if err != nil {
		return err
	}
	defer fleet.Stop()

	fw, err := uploadFirmware(ctx, l)
	if err != nil {
		return err
	}
	if err := verify(ctx, l, fleet, fw); err != nil {
		return err
	}
	printExplore(kubeconfig, l, c)
	if c.appAPI {
		if err := tryAppAPI(opts.AppAPI, fleet.DeviceNames()[:3]); err != nil {
			return err
		}
	}
	ub, err := rollout(ctx, l, fw)
	if err != nil {
		return err
	}
	printSummary(ub, fleet, c)
	if c.keepRunning {
		say("Everything keeps running; press Ctrl-C to stop")
		<-ctx.Done()
	}
	return nil
}

func labOptions(c config, dir string) lab.Options {
	o := lab.Options{BrokerAddress: c.brokerAddress, DataDir: filepath.Join(dir, "minio")}
	if !portFree(c.brokerAddress) {
		say("%s is taken; the broker listens on a free port instead (real devices need 1883)", c.brokerAddress)
		o.BrokerAddress = ""
	}
	if c.deviceHTTP {
		o.DownloadAddress, o.DownloadHost = ":80", c.deviceHost
		if o.DownloadHost == "" {
			o.DownloadHost = lanAddress()
		}
	}
	return o
}

// lanAddress is the first non-loopback IPv4 address of this machine, where
// a device on the same network can reach it; 127.0.0.1 when there is none.
func lanAddress() string {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if ip, ok := a.(*net.IPNet); ok && !ip.IP.IsLoopback() && ip.IP.To4() != nil {
				return ip.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

func portFree(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}

func dataDir(c config) (string, func(), error) {
	dir := c.dataDir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "otafleet-lab-"); err != nil {
			return "", nil, err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	return dir, func() {
		if !c.keepData {
			_ = os.RemoveAll(dir)
		}
	}, nil
}

func bootFleet(ctx context.Context, l *lab.Lab, c config) (*devicesim.Fleet, error) {
	prod := &otav1.Product{ObjectMeta: lab.ObjectMeta(namespace, "smart-plug"),
		Spec: otav1.ProductSpec{ProductKey: productKey, DisplayName: "Smart plug", Modules: []string{"wifi", "mcu"}}}
	if err := l.CreateProduct(ctx, prod); err != nil {
		return nil, err
	}
	say("Booting %d simulated smart plugs (wifi 1.0.0, mcu 2.0.0)", c.devices)
	fleet, err := devicesim.Start(ctx, l.FleetConfig(devicesim.Config{
		ProductKey: productKey, Devices: c.devices, NamePrefix: "plug-", Profile: devicesim.Profile(c.profile),
		Modules:  []devicesim.Module{{Name: "wifi", Version: "1.0.0"}, {Name: "mcu", Version: "2.0.0"}},
		Failures: devicesim.Failures{DownloadFail: c.downloadFail, FlashFail: c.flashFail},
		Seed:     c.seed, ProgressInterval: c.progressInterval, FlashDuration: 500 * time.Millisecond,
	}))
	if err != nil {
		return nil, err
	}
	if err := fleet.WaitInformed(ctx); err != nil {
		fleet.Stop()
		return nil, err
	}
	say("All %d devices reported their versions", c.devices)
	return fleet, nil
}

func uploadFirmware(ctx context.Context, l *lab.Lab) (*otav1.Firmware, error) {
	image := make([]byte, 512<<10)
	_, _ = rand.Read(image)
	fw := &otav1.Firmware{ObjectMeta: lab.ObjectMeta(namespace, "smart-plug-wifi-1.1.0"), Spec: otav1.FirmwareSpec{
		Product: "smart-plug", Module: "wifi", Version: "1.1.0", SignMethod: otav1.SignMethodSHA256,
		Description: "Faster pairing and a fix for dropped schedules."}}
	say("Uploading firmware wifi 1.1.0 (%d KiB) through its pre-signed URL", len(image)>>10)
	if err := l.PushFirmware(ctx, fw, image); err != nil {
		return nil, fmt.Errorf("uploading firmware: %w", err)
	}
	say("Firmware stored: sha256 %s…", fw.Status.Artifact.SHA256[:16])
	return fw, nil
}

func verify(ctx context.Context, l *lab.Lab, fleet *devicesim.Fleet, fw *otav1.Firmware) error {
	var testers []string
	for _, n := range fleet.DeviceNames() {
		if fleet.Plan(n) == devicesim.PlanSucceed && len(testers) < 3 {
			testers = append(testers, n)
		}
	}
	vr := &otav1.VerificationRun{ObjectMeta: lab.ObjectMeta(namespace, "wifi-1.1.0-lab"),
		Spec: otav1.VerificationRunSpec{Firmware: fw.Name, Devices: testers, SourceVersions: []string{"1.0.0"}}}
	say("Verifying on test devices %v", testers)
	if err := l.Client().Create(ctx, vr); err != nil {
		return err
	}
	if err := l.WaitRun(ctx, vr, 5*time.Minute); err != nil {
		return err
	}
	if vr.Status.Phase != otav1.RunSucceeded {
		return fmt.Errorf("verification %s", vr.Status.Phase)
	}
	say("Verified: all %d test devices report wifi 1.1.0", len(testers))
	return nil
}

func rollout(ctx context.Context, l *lab.Lab, fw *otav1.Firmware) (*otav1.UpgradeBatch, error) {
	ub := &otav1.UpgradeBatch{ObjectMeta: lab.ObjectMeta(namespace, "wifi-1.1.0"), Spec: otav1.UpgradeBatchSpec{
		Firmware: fw.Name, SourceVersions: []string{"1.0.0"}, RatePerMinute: 3000,
		Waves: []otav1.Wave{
			{Percent: 5, Pause: &otav1.WavePause{Duration: &metav1.Duration{Duration: 5 * time.Second}}, SuccessThreshold: 80},
			{Percent: 30, SuccessThreshold: 80},
			{Percent: 100},
		},
		Abort: &otav1.AbortPolicy{MaxFailedPercent: 20, MinFinished: 50},
		Tags:  map[string]string{"channel": "stable"},
	}}
	say("Rolling out in waves of 5%%, 30%%, 100%% at 3000 devices a minute")
	if err := l.Client().Create(ctx, ub); err != nil {
		return nil, err
	}
	view := newProgressView(os.Stderr)
	err := l.WaitBatch(ctx, ub, 30*time.Minute, lab.Finished, func(u *otav1.UpgradeBatch) {
		view.show(u)
		promoteWhenHeld(ctx, l, u)
	})
	view.done(ub)
	return ub, err
}

func printExplore(kubeconfig string, l *lab.Lab, c config) {
	say("Explore while it runs, in another terminal:")
	fmt.Fprintf(os.Stderr, "    export KUBECONFIG=%s\n", kubeconfig)
	fmt.Fprintf(os.Stderr, "    kubectl -n %s get ota\n", namespace)
	fmt.Fprintf(os.Stderr, "    kubectl -n %s get ub -w\n", namespace)
	fmt.Fprintf(os.Stderr, "    kubectl -n %s describe upgradebatch wifi-1.1.0\n", namespace)
	fmt.Fprintf(os.Stderr, "    go run ./cmd/kubectl-ota -n %s status batch wifi-1.1.0 -w\n", namespace)
	fmt.Fprintf(os.Stderr, "  A real device can join: point it at MQTT %s, product key %s", l.Broker.Address, productKey)
	if c.deviceHTTP {
		fmt.Fprintf(os.Stderr, "; it downloads from http://%s (port 80).\n", l.DownloadHost)
	} else {
		fmt.Fprintf(os.Stderr, " (add --device-http so it can download on port 80).\n")
	}
}

func printSummary(ub *otav1.UpgradeBatch, fleet *devicesim.Fleet, c config) {
	n := ub.Status.Counts
	say("Batch %s: %d of %d devices upgraded, %d failed, %d timed out", ub.Status.Phase, n.Succeeded, n.Total, n.Failed, n.TimedOut)
	for _, r := range ub.Status.FailureReasons {
		fmt.Fprintf(os.Stderr, "    %-20s %5d  e.g. %q\n", r.Reason, r.Count, r.Example)
	}
	s := fleet.Summary()
	say("The fleet now runs wifi %v", s.Versions["wifi"])
	if c.summaryJSON {
		out, _ := json.Marshal(map[string]any{"phase": ub.Status.Phase, "counts": n, "fleet": s})
		fmt.Println(string(out))
	}
}

func say(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "\033[1m==>\033[0m "+format+"\n", args...)
}

// promoteWhenHeld plays the release manager: when a wave is held (below its
// success threshold, or paused until promoted) it promotes the batch, as
// `kubectl ota promote` does, so the demo always runs to the end.
func promoteWhenHeld(ctx context.Context, l *lab.Lab, ub *otav1.UpgradeBatch) {
	st := ub.Status
	held := false
	for _, c := range st.Conditions {
		if c.Type == otav1.ConditionReconciling && c.Reason == otav1.ReasonWavePaused && strings.Contains(c.Message, "promote") {
			held = true
		}
	}
	if !held || ub.Spec.PromotedWaves >= st.CurrentWave {
		return
	}
	say("Wave %d is held; promoting it (kubectl ota promote %s)", st.CurrentWave, ub.Name)
	patch := client.RawPatch(types.MergePatchType, []byte(fmt.Sprintf(`{"spec":{"promotedWaves":%d}}`, st.CurrentWave)))
	if err := l.Client().Patch(ctx, ub, patch); err != nil {
		say("promote failed: %v", err)
	}
}
