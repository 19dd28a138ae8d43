package shard

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/otafleet/otafleet/internal/fleet"
	"github.com/otafleet/otafleet/internal/testserver"
)

var cp *testserver.ControlPlane

func TestMain(m *testing.M) { testserver.RunWithControlPlane(m, &cp) }

// replica is one Manager in the test, with what its shards did.
type replica struct {
	m      *Manager
	router *Router
	cancel context.CancelFunc
	done   chan struct{}
}

// owners records which replica ran each product, and checks that two
// never ran one product at once.
type owners struct {
	mu      sync.Mutex
	running map[string]string
	overlap []string
}

func (o *owners) start(pk, id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if cur, ok := o.running[pk]; ok {
		o.overlap = append(o.overlap, fmt.Sprintf("%s run by %s and %s", pk, cur, id))
	}
	o.running[pk] = id
}

func (o *owners) stop(pk, id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.running[pk] == id {
		delete(o.running, pk)
	}
}

func (o *owners) counts() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := map[string]int{}
	for _, id := range o.running {
		c[id]++
	}
	return c
}

// keyList is the products' keys, which a test changes.
type keyList struct {
	mu   sync.Mutex
	keys []string
}

func (k *keyList) get() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.keys)
}

func (k *keyList) set(keys []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keys = keys
}

func startReplica(t *testing.T, ns, id string, keys *keyList, o *owners) *replica {
	r := &replica{router: NewRouter(func() bool { return false }), done: make(chan struct{})}
	var err error
	r.m, err = NewManager(Config{
		Namespace: ns, Identity: id, LeaseDuration: 3 * time.Second, RetryPeriod: 200 * time.Millisecond,
		Client: cp.Client, Reader: cp.Client,
		Keys: func(context.Context) ([]string, error) { return keys.get(), nil },
		Build: func(pk string) (Shard, error) {
			e := fleet.New(nil, nil, nil, nil, fleet.Options{ProductKey: pk}, logr.Discard())
			return Shard{Engine: e, Run: func(ctx context.Context) error {
				o.start(pk, id)
				<-ctx.Done()
				o.stop(pk, id)
				return nil
			}}, nil
		},
		Log: logr.Discard(),
	}, r.router)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { defer close(r.done); _ = r.m.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

func waitCounts(t *testing.T, o *owners, what string, ok func(map[string]int) bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true,
		func(context.Context) (bool, error) { return ok(o.counts()), nil })
	if err != nil {
		t.Fatalf("%s: %v (running: %v)", what, err, o.counts())
	}
}

func balanced(total int, ids ...string) func(map[string]int) bool {
	return func(c map[string]int) bool {
		sum := 0
		for _, id := range ids {
			if c[id] < total/len(ids) || c[id] > (total+len(ids)-1)/len(ids) {
				return false
			}
			sum += c[id]
		}
		return sum == total
	}
}

// Three replicas split six products two each; a replica that joins gets
// a share, one that stops hands its products over at once, one that dies
// loses them when their Leases expire; a product never runs twice.
func TestReplicasShareProducts(t *testing.T) {
	ns := "shard-test"
	if err := cp.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	keys := &keyList{keys: []string{"pkA", "pkB", "pk_c", "pk-C", "PKD", "pke"}}
	o := &owners{running: map[string]string{}}
	a := startReplica(t, ns, "a", keys, o)
	waitCounts(t, o, "one replica takes every product", balanced(6, "a"))
	b := startReplica(t, ns, "b", keys, o)
	c := startReplica(t, ns, "c", keys, o)
	waitCounts(t, o, "three replicas split six products", balanced(6, "a", "b", "c"))

	began := time.Now()
	b.cancel()
	<-b.done
	waitCounts(t, o, "a graceful stop hands over", balanced(6, "a", "c"))
	t.Logf("graceful handover took %s", time.Since(began).Round(time.Millisecond))

	began = time.Now()
	c.m.crashForTest()
	waitCounts(t, o, "a crash's products move once the Leases expire", balanced(6, "a"))
	if took := time.Since(began); took < 2*time.Second {
		t.Errorf("a crashed replica's products moved after %s, before their Leases could expire", took)
	}
	t.Logf("takeover after a crash took %s (lease duration 3 s)", time.Since(began).Round(time.Millisecond))
	if len(o.overlap) > 0 {
		t.Errorf("products run by two replicas at once: %v", o.overlap)
	}
	if got := slices.Sorted(maps.Keys(a.router.engines)); len(got) != 6 {
		t.Errorf("the router of the last replica has %v, want the six products", got)
	}
	// A Product deleted: its shard stops and its Lease goes.
	keys.set(keys.get()[1:])
	waitCounts(t, o, "a deleted product's shard stops", balanced(5, "a"))
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 10*time.Second, true,
		func(ctx context.Context) (bool, error) {
			l := &coordinationv1.Lease{}
			err := cp.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: ProductLeaseName("pkA")}, l)
			return apierrors.IsNotFound(err), nil
		})
	if err != nil {
		t.Errorf("the Lease of the deleted product stayed: %v", err)
	}
}
