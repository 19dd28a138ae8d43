package controllers

// The suite runs the reconcilers in one manager against a real
// kube-apiserver and etcd (envtest) and a real MinIO, all started once per
// package. Each test works in its own namespace.
//
// Test files add their reconcilers with registerForSuite from an init
// function, so that the manager starts with all of them.

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/otafleet/otafleet/internal/storage"
	"github.com/otafleet/otafleet/internal/testserver"
)

// suite holds the servers and clients every test shares.
var suite struct {
	cp    *testserver.ControlPlane
	minio *testserver.MinIO
	// store is a client of MinIO configured as the operator's, with a
	// device-facing URL on another host name.
	store *storage.MinIO
	// k8s is a direct (uncached) client for tests.
	k8s client.Client
}

// suiteBucket is the operator's bucket in the tests.
const suiteBucket = "otafleet-firmware"

// suiteReconcilers are added to the manager before it starts.
var suiteReconcilers []func(ctrl.Manager) error

// registerForSuite adds a reconciler to the suite's manager.
func registerForSuite(setup func(ctrl.Manager) error) {
	suiteReconcilers = append(suiteReconcilers, setup)
}

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	logOut := io.Discard
	if os.Getenv("OTAFLEET_TEST_LOG") != "" {
		logOut = os.Stderr
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(logOut), zap.UseDevMode(true)))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop, err := startSuite(ctx)
	defer stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the test servers:", err)
		return 1
	}
	return m.Run()
}

// startSuite starts the servers and the manager; stop undoes whatever was
// started, also after an error.
func startSuite(ctx context.Context) (stop func(), err error) {
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	if suite.cp, err = testserver.StartControlPlane(); err != nil {
		return stop, err
	}
	stops = append(stops, func() { _ = suite.cp.Stop() })
	suite.k8s = suite.cp.Client
	if suite.minio, err = testserver.StartMinIO(ctx, testserver.MinIOOptions{}); err != nil {
		return stop, err
	}
	stops = append(stops, func() { _ = suite.minio.Stop() })
	suite.store, err = storage.New(storage.Config{
		Endpoint:  suite.minio.Endpoint,
		Insecure:  true,
		PublicURL: "http://" + strings.Replace(suite.minio.Endpoint, "127.0.0.1", "localhost", 1),
		AccessKey: suite.minio.AccessKey,
		SecretKey: suite.minio.SecretKey,
	})
	if err != nil {
		return stop, err
	}
	mgr, err := ctrl.NewManager(suite.cp.Config, ctrl.Options{
		Scheme:                 suite.cp.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		return stop, err
	}
	for _, setup := range suiteReconcilers {
		if err := setup(mgr); err != nil {
			return stop, err
		}
	}
	mgrCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mgrCtx) }()
	stops = append(stops, func() { cancel(); <-done })
	syncCtx, syncCancel := context.WithTimeout(ctx, time.Minute)
	defer syncCancel()
	if !mgr.GetCache().WaitForCacheSync(syncCtx) {
		return stop, fmt.Errorf("manager cache did not sync")
	}
	return stop, nil
}

// newNamespace creates a namespace for one test; prefix keeps names
// ordered where a test needs that.
func newNamespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
	if err := suite.k8s.Create(t.Context(), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// envtest runs no namespace controller: the namespace stays
		// Terminating, but the test's objects stop mattering.
		_ = suite.k8s.Delete(context.Background(), ns)
	})
	return ns.Name
}

// eventually polls cond every 100 ms until it returns true or the timeout
// passes; the last message explains a failure.
func eventually(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %s", timeout, msg)
		}
		select {
		case <-t.Context().Done():
			t.Fatal("test context ended")
		case <-time.After(100 * time.Millisecond): // polling interval
		}
	}
}
