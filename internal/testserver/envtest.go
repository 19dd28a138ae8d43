package testserver

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	otascheme "github.com/otafleet/otafleet/internal/scheme"
)

// ControlPlane is a running kube-apiserver and etcd with the otafleet CRDs
// installed.
type ControlPlane struct {
	Env    *envtest.Environment
	Config *rest.Config
	Client client.Client
	Scheme *runtime.Scheme

	// certDir holds the API server's certificates; ours, not envtest's,
	// so that StopAPIServer keeps them for StartAPIServer.
	certDir string
}

// StartControlPlane starts kube-apiserver and etcd (built by
// hack/setup-test-env.sh) and installs the CRDs from config/crd/bases.
func StartControlPlane() (*ControlPlane, error) {
	bins, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	certDir, err := os.MkdirTemp("", "otafleet-apiserver-")
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: bins.KubeAssets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	env.ControlPlane.APIServer = &envtest.APIServer{CertDir: certDir}
	cfg, err := env.Start()
	if err != nil {
		_ = os.RemoveAll(certDir)
		return nil, fmt.Errorf("starting envtest: %w", err)
	}
	// The tests and the engine write in bursts; client-go's default 5 qps
	// would throttle them long before the API server is the limit.
	cfg.QPS, cfg.Burst = 5000, 10000
	scheme := otascheme.New()
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		_ = os.RemoveAll(certDir)
		return nil, err
	}
	return &ControlPlane{Env: env, Config: cfg, Client: c, Scheme: scheme, certDir: certDir}, nil
}

// Stop stops the API server and etcd.
func (c *ControlPlane) Stop() error {
	err := c.Env.Stop()
	if rmErr := os.RemoveAll(c.certDir); err == nil {
		err = rmErr
	}
	return err
}

// StopAPIServer stops kube-apiserver (SIGTERM; SIGKILL when it has not
// drained its requests and watches within envtest's stop timeout) and
// leaves etcd running, for tests of an API server outage. It returns once
// the port refuses connections.
func (c *ControlPlane) StopAPIServer() error {
	s := c.Env.ControlPlane.APIServer
	if err := s.Stop(); err != nil && !strings.Contains(err.Error(), "timeout waiting for process") {
		return err
	}
	addr := net.JoinHostPort(s.SecureServing.Address, s.SecureServing.Port)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return nil
		}
		_ = conn.Close()
	}
	return fmt.Errorf("kube-apiserver still accepts connections on %s", addr)
}

// StartAPIServer starts a stopped kube-apiserver again on the same port,
// certificates, users and etcd, and returns once it is healthy.
func (c *ControlPlane) StartAPIServer() error { return c.Env.ControlPlane.APIServer.Start() }

// WriteKubeconfig writes a kubeconfig for an admin user to path, for kubectl.
func (c *ControlPlane) WriteKubeconfig(path string) error {
	user, err := c.Env.AddUser(envtest.User{Name: "otafleet-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

// RunWithControlPlane is a test package's TestMain for tests that share
// one control plane: it starts it into *cp, runs the tests, stops it and
// exits with the tests' code.
func RunWithControlPlane(m *testing.M, cp **ControlPlane) {
	var err error
	if *cp, err = StartControlPlane(); err != nil {
		fmt.Fprintln(os.Stderr, "starting control plane:", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := (*cp).Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping control plane:", err)
	}
	os.Exit(code)
}
