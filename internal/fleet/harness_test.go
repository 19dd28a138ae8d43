package fleet

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/protocol"
	"github.com/otafleet/otafleet/internal/testserver"
)

// These tests run the engine against a real API server. Devices are played
// by simDevices, a stand-in for the MQTT side that answers pushes in
// process; the end-to-end tests run the real gateway and simulator.

var cp *testserver.ControlPlane

func TestMain(m *testing.M) {
	var err error
	cp, err = testserver.StartControlPlane()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = cp.Stop()
	os.Exit(code)
}

// behaviour is how a simulated device answers a push.
type behaviour int

const (
	upgrades       behaviour = iota // progress 0, 100, then informs the target
	failsDownload                   // progress -2
	failsOnce                       // -4 on the first push, upgrades on the next
	startsOnly                      // progress 0, then nothing (times out)
	ignores                         // never answers
	offlineOnce                     // misses the first push, upgrades on the next
	confirmsManual                  // like upgrades; used with confirmation
)

type simDevices struct {
	e       *Engine
	pk      string
	mu      sync.Mutex
	how     map[string]behaviour
	pushes  map[string]int
	modules map[string]map[string]string // device -> module -> version
	total   atomic.Int64
	// onPush, if set, runs before a push is answered.
	onPush func(device string)
}

func (s *simDevices) PublishUpgrade(ctx context.Context, pk, dn string, u protocol.Upgrade) error {
	s.total.Add(1)
	s.mu.Lock()
	s.pushes[dn]++
	n := s.pushes[dn]
	how := s.how[dn]
	onPush := s.onPush
	s.mu.Unlock()
	if onPush != nil {
		onPush(dn)
	}
	module := u.Module
	if module == "" {
		module = protocol.DefaultModule
	}
	prog := func(step protocol.Step, desc string) protocol.Message {
		return protocol.Message{Kind: protocol.KindProgress, ProductKey: pk, DeviceName: dn, Module: module, Step: step, Desc: desc}
	}
	var msgs []protocol.Message
	switch {
	case how == failsDownload:
		msgs = append(msgs, prog(0, ""), prog(-2, "download failed: 404"))
	case how == failsOnce && n == 1:
		msgs = append(msgs, prog(0, ""), prog(-4, "flash write error"))
	case how == startsOnly:
		msgs = append(msgs, prog(0, "Enter in downloading state"))
	case how == ignores, how == offlineOnce && n == 1:
	default:
		s.mu.Lock()
		s.modules[dn][module] = u.Version
		s.mu.Unlock()
		msgs = append(msgs, prog(0, ""), prog(100, ""),
			protocol.Message{Kind: protocol.KindInform, ProductKey: pk, DeviceName: dn, Module: module, Version: u.Version})
	}
	if len(msgs) > 0 {
		s.e.HandleBatch(ctx, msgs)
	}
	return nil
}

func (s *simDevices) PublishGetReply(context.Context, string, string, string, *protocol.Upgrade) error {
	return nil
}

func (s *simDevices) PublishRequestReply(context.Context, string, string, *protocol.Upgrade) error {
	return nil
}

type staticSigner struct{}

func (staticSigner) PresignGet(_ context.Context, bucket, key string) (string, error) {
	return "http://storage.test/" + bucket + "/" + key + "?X-Amz-Signature=abc", nil
}

// env is one test's namespace, product, engine and devices.
type env struct {
	t    *testing.T
	ns   string
	pk   string
	prod *otav1.Product
	e    *Engine
	sim  *simDevices
	stop context.CancelFunc
	done chan struct{}
}

var envCounter atomic.Int64

func newEnv(t *testing.T) *env {
	t.Helper()
	n := envCounter.Add(1)
	ns := fmt.Sprintf("fleet-%d-%d", os.Getpid(), n)
	ctx := context.Background()
	if err := cp.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cp.Client.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}) })
	p := &otav1.Product{ObjectMeta: metav1.ObjectMeta{Name: "plug", Namespace: ns},
		Spec: otav1.ProductSpec{ProductKey: fmt.Sprintf("pk%d", n)}}
	if err := cp.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	// As the Product reconciler records it: the engine's rebuild registers
	// only Products that own their key.
	meta.SetStatusCondition(&p.Status.Conditions, metav1.Condition{Type: otav1.ConditionReady, Status: metav1.ConditionTrue,
		Reason: otav1.ReasonSucceeded, Message: "owns its key"})
	if err := cp.Client.Status().Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	v := &env{t: t, ns: ns, pk: p.Spec.ProductKey, prod: p}
	v.start()
	t.Cleanup(v.shutdown)
	return v
}

// start runs a fresh engine over what the API server holds, as a new
// leader would.
func (v *env) start() {
	v.e = New(cp.Client, cp.Client, nil, staticSigner{}, Options{FlushInterval: 50 * time.Millisecond, TickInterval: 10 * time.Millisecond, RepushAfter: 100 * time.Millisecond, RebuiltRepushAfter: time.Second}, logr.Discard())
	if v.sim == nil {
		v.sim = &simDevices{pk: v.pk, how: map[string]behaviour{}, pushes: map[string]int{}, modules: map[string]map[string]string{}}
	}
	v.sim.e = v.e
	v.e.sender.pub = v.sim
	ctx, cancel := context.WithCancel(context.Background())
	v.stop, v.done = cancel, make(chan struct{})
	go func() {
		defer close(v.done)
		if err := v.e.Start(ctx); err != nil {
			v.t.Errorf("engine: %v", err)
		}
	}()
	v.e.SyncProduct(v.prod)
	<-v.e.readyCh
}

func (v *env) shutdown() {
	v.stop()
	<-v.done
}

// restart stops the engine (which flushes) and starts a new one.
func (v *env) restart() {
	v.shutdown()
	v.start()
}

// devices registers devices that report module versions.
func (v *env) devices(how behaviour, versions map[string]string, names ...string) {
	var msgs []protocol.Message
	v.sim.mu.Lock()
	for _, n := range names {
		v.sim.how[n] = how
		if v.sim.modules[n] == nil {
			v.sim.modules[n] = map[string]string{}
		}
		for m, ver := range versions {
			v.sim.modules[n][m] = ver
			msgs = append(msgs, protocol.Message{Kind: protocol.KindInform, ProductKey: v.pk, DeviceName: n, Module: m, Version: ver})
		}
	}
	v.sim.mu.Unlock()
	v.e.HandleBatch(context.Background(), msgs)
}

func (v *env) inform(name, module, version string) {
	v.e.HandleBatch(context.Background(), []protocol.Message{{Kind: protocol.KindInform, ProductKey: v.pk, DeviceName: name, Module: module, Version: version}})
}

// spec returns a batch spec for module -> target with fast settings.
func (v *env) spec(name, module, target string) Spec {
	return Spec{
		Ref: otav1.CampaignReference{Kind: otav1.KindUpgradeBatch, Name: name}, Namespace: v.ns,
		UID: types.UID("uid-" + v.ns + "-" + name), ProductKey: v.pk, Module: module, Target: target,
		Image:         Image{Bucket: "fw", Key: name, Size: 100, MD5: "0123456789abcdef0123456789abcdef", SignMethod: otav1.SignMethodMD5},
		RatePerMinute: 10000, Timeout: time.Hour, RetryInterval: time.Minute,
	}
}

func (v *env) upsert(s Spec) Status {
	v.t.Helper()
	st, err := v.e.Upsert(s)
	if err != nil {
		v.t.Fatalf("upsert %s: %v", s.Ref.Name, err)
	}
	return st
}

// waitFor polls the campaign's status until cond holds or 20 s pass.
func (v *env) waitFor(name string, what string, cond func(Status) bool) Status {
	v.t.Helper()
	ref := otav1.CampaignReference{Kind: otav1.KindUpgradeBatch, Name: name}
	deadline := time.Now().Add(20 * time.Second)
	var st Status
	for time.Now().Before(deadline) {
		var ok bool
		if st, ok = v.e.Status(v.ns, ref); ok && cond(st) {
			return st
		}
		time.Sleep(10 * time.Millisecond)
	}
	v.t.Fatalf("%s: %s not reached; last status: phase %s counts %+v held %q reasons %+v", name, what, st.Phase, st.Counts, st.Held, st.Reasons)
	return st
}

func completed(st Status) bool { return st.Phase == otav1.BatchCompleted }

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%04d", prefix, i)
	}
	return out
}
