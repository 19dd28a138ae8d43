// Package lifecycle tests what happens to campaigns when the objects they
// depend on are deleted or recreated: the real reconcilers and rollout
// engine against a real kube-apiserver, etcd and MinIO. Devices are played
// in process: they inform through the engine's handler and never answer a
// push, so that their tasks stay active (held) until something ends them.
package lifecycle

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/otafleet/otafleet/controllers"
	"github.com/otafleet/otafleet/internal/fleet"
	"github.com/otafleet/otafleet/internal/protocol"
	"github.com/otafleet/otafleet/internal/storage"
	"github.com/otafleet/otafleet/internal/testserver"
)

const bucket = "otafleet-firmware"

var suite struct {
	cp     *testserver.ControlPlane
	store  *storage.MinIO
	engine *fleet.Engine
	pushes *silentDevices
}

// silentDevices counts pushes per device and never answers.
type silentDevices struct {
	mu     sync.Mutex
	pushes map[string]int
}

func (s *silentDevices) PublishUpgrade(_ context.Context, pk, dn string, _ protocol.Upgrade) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pushes[pk+"/"+dn]++
	return nil
}

func (s *silentDevices) PublishGetReply(context.Context, string, string, string, *protocol.Upgrade) error {
	return nil
}

func (s *silentDevices) PublishRequestReply(context.Context, string, string, *protocol.Upgrade) error {
	return nil
}

type signer struct{}

func (signer) PresignGet(_ context.Context, bucket, key string) (string, error) {
	return "http://dl.test/" + bucket + "/" + key, nil
}

func TestMain(m *testing.M) {
	out := io.Discard
	if os.Getenv("OTAFLEET_TEST_LOG") != "" {
		out = os.Stderr
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(out), zap.UseDevMode(true)))
	ctx, cancel := context.WithCancel(context.Background())
	stop, err := start(ctx)
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the test servers:", err)
	} else {
		code = m.Run()
	}
	cancel()
	stop()
	os.Exit(code)
}

func start(ctx context.Context) (func(), error) {
	var stops []func()
	stop := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	var err error
	if suite.cp, err = testserver.StartControlPlane(); err != nil {
		return stop, err
	}
	stops = append(stops, func() { _ = suite.cp.Stop() })
	minio, err := testserver.StartMinIO(ctx, testserver.MinIOOptions{})
	if err != nil {
		return stop, err
	}
	stops = append(stops, func() { _ = minio.Stop() })
	suite.store, err = storage.New(storage.Config{Endpoint: minio.Endpoint, Insecure: true,
		PublicURL: "http://" + strings.Replace(minio.Endpoint, "127.0.0.1", "localhost", 1),
		AccessKey: minio.AccessKey, SecretKey: minio.SecretKey})
	if err != nil {
		return stop, err
	}
	mgr, err := ctrl.NewManager(suite.cp.Config, ctrl.Options{Scheme: suite.cp.Scheme,
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	if err != nil {
		return stop, err
	}
	if err := setup(mgr); err != nil {
		return stop, err
	}
	mgrCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mgrCtx) }()
	stops = append(stops, func() { cancel(); <-done })
	deadline := time.Now().Add(time.Minute)
	for !suite.engine.Ready() {
		if time.Now().After(deadline) {
			return stop, fmt.Errorf("engine not ready within a minute")
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	return stop, nil
}

func setup(mgr ctrl.Manager) error {
	c := mgr.GetClient()
	suite.pushes = &silentDevices{pushes: map[string]int{}}
	suite.engine = fleet.New(c, mgr.GetAPIReader(), suite.pushes, signer{},
		fleet.Options{FlushInterval: 50 * time.Millisecond, TickInterval: 10 * time.Millisecond}, logr.Discard())
	if err := mgr.Add(suite.engine); err != nil {
		return err
	}
	for _, r := range []interface{ SetupWithManager(ctrl.Manager) error }{
		&controllers.FirmwareReconciler{Client: c, Store: suite.store, Bucket: bucket},
		&controllers.ProductReconciler{Client: c, Engine: suite.engine, InventoryInterval: 200 * time.Millisecond},
		&controllers.VerificationRunReconciler{Client: c, Engine: suite.engine},
		&controllers.UpgradeBatchReconciler{Client: c, Engine: suite.engine, Objects: suite.store, Bucket: bucket},
	} {
		if err := r.SetupWithManager(mgr); err != nil {
			return fmt.Errorf("%T: %w", r, err)
		}
	}
	return nil
}
