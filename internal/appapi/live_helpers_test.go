package appapi

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/fleet"
	"github.com/otafleet/otafleet/internal/protocol"
	"github.com/otafleet/otafleet/internal/testserver"
)

// The live tests run the API over a real rollout engine that writes to a
// real API server (envtest). Devices are played in process by simFleet,
// which answers pushes through the engine's HandleBatch as the MQTT gateway
// would; the end-to-end tests run the real broker and simulator.

var (
	cpOnce sync.Once
	cp     *testserver.ControlPlane
	cpErr  error
)

// controlPlane starts the API server on first use, so that the unit tests
// alone do not pay for it.
func controlPlane(t *testing.T) *testserver.ControlPlane {
	t.Helper()
	cpOnce.Do(func() { cp, cpErr = testserver.StartControlPlane() })
	if cpErr != nil {
		t.Fatalf("starting the control plane: %v", cpErr)
	}
	return cp
}

func TestMain(m *testing.M) {
	code := m.Run()
	if cp != nil {
		_ = cp.Stop()
	}
	os.Exit(code)
}

// behaviour is how a simulated device answers a push.
type behaviour int

const (
	upgrades behaviour = iota // progress 0, 100, then informs the target
	holds                     // progress 0, then nothing
)

type simFleet struct {
	eng    *fleet.Engine
	mu     sync.Mutex
	how    map[string]behaviour
	pushes map[string]int
}

func (s *simFleet) PublishUpgrade(ctx context.Context, pk, dn string, u protocol.Upgrade) error {
	s.mu.Lock()
	s.pushes[dn]++
	how := s.how[dn]
	s.mu.Unlock()
	module := u.Module
	if module == "" {
		module = protocol.DefaultModule
	}
	prog := func(step protocol.Step) protocol.Message {
		return protocol.Message{Kind: protocol.KindProgress, ProductKey: pk, DeviceName: dn, Module: module, Step: step}
	}
	msgs := []protocol.Message{prog(0)}
	if how == upgrades {
		msgs = append(msgs, prog(100),
			protocol.Message{Kind: protocol.KindInform, ProductKey: pk, DeviceName: dn, Module: module, Version: u.Version})
	}
	s.eng.HandleBatch(ctx, msgs)
	return nil
}

func (s *simFleet) PublishGetReply(context.Context, string, string, string, *protocol.Upgrade) error {
	return nil
}

func (s *simFleet) PublishRequestReply(context.Context, string, string, *protocol.Upgrade) error {
	return nil
}

func (s *simFleet) pushCount(dn string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pushes[dn]
}

type staticSigner struct{}

func (staticSigner) PresignGet(_ context.Context, bucket, key string) (string, error) {
	return "http://storage.test/" + bucket + "/" + key + "?X-Amz-Signature=abc", nil
}

// liveEnv is one test's namespace, product, engine, devices and server.
type liveEnv struct {
	t   *testing.T
	ns  string
	pk  string
	eng *fleet.Engine
	sim *simFleet
	url string
	reg *prometheus.Registry
}

var liveCounter atomic.Int64

// newLiveEnv starts an engine over a new namespace and Product with the
// given devices on version 1.0.0, and the API in front of it.
func newLiveEnv(t *testing.T, devices map[string]behaviour) *liveEnv {
	t.Helper()
	c := controlPlane(t).Client
	n := liveCounter.Add(1)
	v := &liveEnv{t: t, ns: fmt.Sprintf("appapi-%d-%d", os.Getpid(), n), pk: fmt.Sprintf("app%d", n),
		sim: &simFleet{how: devices, pushes: map[string]int{}}, reg: prometheus.NewRegistry()}
	ctx := context.Background()
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: v.ns}}
	if err := c.Create(ctx, nsObj); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), nsObj) })
	p := &otav1.Product{ObjectMeta: metav1.ObjectMeta{Name: "plug", Namespace: v.ns},
		Spec: otav1.ProductSpec{ProductKey: v.pk}}
	if err := c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}

	v.eng = fleet.New(c, c, v.sim, staticSigner{},
		fleet.Options{FlushInterval: 50 * time.Millisecond, TickInterval: 10 * time.Millisecond}, logr.Discard())
	v.sim.eng = v.eng
	engCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := v.eng.Start(engCtx); err != nil {
			t.Errorf("engine: %v", err)
		}
	}()
	t.Cleanup(func() { stop(); <-done })
	v.eng.SyncProduct(p)
	eventually(t, "engine ready", v.eng.Ready)

	var msgs []protocol.Message
	for dn := range devices {
		msgs = append(msgs, protocol.Message{Kind: protocol.KindInform, ProductKey: v.pk, DeviceName: dn,
			Module: protocol.DefaultModule, Version: "1.0.0"})
	}
	v.eng.HandleBatch(ctx, msgs)

	cfg := testConfig()
	cfg.Registerer = v.reg
	s, err := New(cfg, v.eng)
	if err != nil {
		t.Fatal(err)
	}
	v.url = serve(t, s)
	return v
}

// dev is the "productKey/deviceName" of a device of this env.
func (v *liveEnv) dev(dn string) string { return v.pk + "/" + dn }

func (v *liveEnv) devs(dns ...string) []string {
	out := make([]string, len(dns))
	for i, dn := range dns {
		out[i] = v.dev(dn)
	}
	return out
}

var batchRef = otav1.CampaignReference{Kind: otav1.KindUpgradeBatch, Name: "b"}

// campaign upgrades every device to 2.0.0, asking the app to confirm or not.
func (v *liveEnv) campaign(confirm bool) {
	v.t.Helper()
	_, err := v.eng.Upsert(fleet.Spec{
		Ref: batchRef, Namespace: v.ns, UID: types.UID("uid-" + v.ns), ProductKey: v.pk,
		Module: protocol.DefaultModule, Target: "2.0.0",
		Image:         fleet.Image{Bucket: "fw", Key: "b", Size: 100, MD5: "0123456789abcdef0123456789abcdef", SignMethod: otav1.SignMethodMD5},
		RatePerMinute: 10000, Timeout: time.Hour, RetryInterval: time.Minute, Confirm: confirm,
	})
	if err != nil {
		v.t.Fatal(err)
	}
}

func (v *liveEnv) counts() otav1.TaskCounts {
	v.t.Helper()
	st, ok := v.eng.Status(v.ns, batchRef)
	if !ok {
		v.t.Fatal("no campaign status")
	}
	return st.Counts
}

// state is the engine's own view of a device's task.
func (v *liveEnv) state(dn string) otav1.TaskState {
	ts, _ := v.eng.DeviceTasks(v.pk, dn)
	if len(ts) == 0 {
		return ""
	}
	return ts[0].State
}

// waitState polls the API until a device's task is in state st.
func (v *liveEnv) waitState(token, dn string, st otav1.TaskState) ProgressItem {
	v.t.Helper()
	var p ProgressItem
	eventually(v.t, v.dev(dn)+" "+string(st), func() bool {
		p = decodeData[ProgressItem](v.t, call(v.t, v.url, PathProgressGet, token, ref(v.dev(dn))).want(v.t, 200))
		return p.State == st
	})
	return p
}
