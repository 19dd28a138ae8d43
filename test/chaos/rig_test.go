package chaos

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/otafleet/otafleet/internal/testserver"
)

const (
	systemNS     = "otafleet-system"
	downloadHost = "dl.chaos.lab" // devices map it to the download service
	clientID     = "otafleet-chaos"
)

// rig is everything the harness runs: the real kube-apiserver and etcd,
// Mosquitto and MinIO, and the built manager, download service and
// simulator, each its own process.
type rig struct {
	t          *testing.T
	dir        string
	bins       binaries
	cp         *testserver.ControlPlane
	c          client.Client
	broker     *testserver.Mosquitto
	store      *testserver.MinIO
	kubeconfig string
	dlAddr     string
	download   *proc
	devices    int      // the fleet's size
	leaseFlags []string // the managers' --leader-elect-* flags (CHAOS_LEASE)
	// managerArgs are added to every manager's flags (product Leases), and
	// replicaArgs(i) to replica i's.
	managerArgs []string
	replicaArgs func(i int) []string
	metrics     []string // each replica's metrics address, the same across restarts

	mu       sync.Mutex // guards what follows: the killer and the supervisor replace processes
	managers []*proc    // one per replica, the current process of each
	starts   int        // manager processes started
	restarts []restart  // processes that exited by themselves
	// nextStart is when the supervisor may restart each replica again.
	nextStart []time.Time
}

// startRig builds the binaries and starts the servers, the download
// service and the replicas of the manager, with logs in dir (a temporary
// directory when empty). Everything is stopped when the test ends.
func startRig(ctx context.Context, t *testing.T, cfg config) *rig {
	r := startServers(ctx, t, cfg.dir, slices.Contains(cfg.faults, "broker-persist"))
	r.devices, r.leaseFlags = cfg.devices, cfg.leaseFlags()
	r.startManagers(ctx, cfg.replicas)
	t.Logf("%d manager(s) up; logs in %s", cfg.replicas, r.dir)
	return r
}

// startServers builds the binaries and starts the servers (Mosquitto with
// persistence when persist) and the download service; no manager yet.
func startServers(ctx context.Context, t *testing.T, dir string, persist bool) *rig {
	r := &rig{t: t, dir: dir}
	if dir == "" {
		r.dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var err error
	began := time.Now()
	if r.bins, err = buildBinaries(ctx, r.dir); err != nil {
		t.Fatal(err)
	}
	t.Logf("built the binaries in %s", time.Since(began).Round(time.Millisecond))
	if r.cp, err = testserver.StartControlPlane(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.cp.Stop() })
	r.c = r.cp.Client
	r.kubeconfig = filepath.Join(r.dir, "kubeconfig")
	if err := r.cp.WriteKubeconfig(r.kubeconfig); err != nil {
		t.Fatal(err)
	}
	if r.broker, err = testserver.StartMosquitto(ctx, testserver.MosquittoOptions{Persistence: persist}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.broker.Stop() })
	if r.store, err = testserver.StartMinIO(ctx, testserver.MinIOOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.store.Stop() })
	secret := r.createSecrets(ctx)
	r.startDownload(ctx, secret)
	t.Logf("servers and download service up %s after the start", time.Since(began).Round(time.Millisecond))
	return r
}

// createSecrets creates the Secrets the manager reads (object storage
// credentials, the download URL secret) and returns the download secret.
func (r *rig) createSecrets(ctx context.Context) []byte {
	raw := make([]byte, 48)
	_, _ = rand.Read(raw)
	secret := []byte(base64.StdEncoding.EncodeToString(raw))
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: systemNS}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: systemNS, Name: "otafleet-s3"},
			Data: map[string][]byte{"accessKey": []byte(r.store.AccessKey), "secretKey": []byte(r.store.SecretKey)}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: systemNS, Name: "otafleet-download"},
			Data: map[string][]byte{"secret": secret}},
	}
	for _, o := range objs {
		if err := r.c.Create(ctx, o); err != nil {
			r.t.Fatal(err)
		}
	}
	return secret
}

// startDownload runs the download service as its own process, so that
// devices keep downloading while the manager is down.
func (r *rig) startDownload(ctx context.Context, secret []byte) {
	secretFile := filepath.Join(r.dir, "download-secret")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		r.t.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		r.t.Fatal(err)
	}
	r.dlAddr = "127.0.0.1:" + strconv.Itoa(port)
	r.download, err = startProc("download", filepath.Join(r.dir, "download.log"), nil,
		[]string{"OTAFLEET_S3_ACCESS_KEY=" + r.store.AccessKey, "OTAFLEET_S3_SECRET_KEY=" + r.store.SecretKey},
		r.bins.download, "--bind-address", r.dlAddr, "--metrics-bind-address", "0",
		"--s3-endpoint", r.store.Endpoint, "--s3-insecure", "--secret-file", secretFile)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = r.download.stop(10 * time.Second) })
	if err := waitListening(ctx, r.download, r.dlAddr, time.Minute); err != nil {
		r.t.Fatal(err)
	}
}
