package chaos

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/lab"
)

// line is one product line of the replicas test: a Product alone in its
// namespace, its simulated fleet and its batch.
type line struct {
	ns, product, key string
	fleet            *devicesim.Fleet
	batch            *otav1.UpgradeBatch
}

// TestReplicasShareProducts (#15): three manager processes with product
// Leases split the products; mid-rollout the replica holding the most is
// SIGKILLed SHARDS_KILLS times (and restarted, as its pod would be), a
// fourth replica joins, and another is stopped gracefully. Every batch must finish with the same
// exact check as the crash harness, and the live replicas end balanced.
func TestReplicasShareProducts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three manager processes")
	}
	products, devices, kills := envInt(t, "SHARDS_PRODUCTS", 6), envInt(t, "SHARDS_DEVICES", 150), envInt(t, "SHARDS_KILLS", 1)
	seed := int64(envInt(t, "CHAOS_SEED", int(time.Now().UnixNano()%1e9)))
	t.Logf("replicas test: %d products of %d devices, %d kills, seed %d", products, devices, kills, seed)
	ctrllog.SetLogger(logr.Discard())
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	r := startServers(ctx, t, os.Getenv("CHAOS_DIR"), false)
	r.managerArgs = []string{"--product-leases", "--product-lease-duration", "6s", "--product-lease-retry-period", "500ms"}
	app := r.withAppAPI(ctx)
	for range 3 {
		r.addReplica()
	}
	lines := r.startLines(ctx, products, devices, seed)
	r.waitBalanced(ctx, products, 3)
	for _, l := range lines {
		fw, err := r.pushProductFirmware(ctx, l.ns, l.product, "2.0.0", nil)
		if err != nil {
			t.Fatal(err)
		}
		// Half a minute of pushes when nothing is down, and a quarter
		// minute more for each kill.
		rate := devices * 60 / (30 + 15*kills)
		if l.batch, err = r.createBatch(ctx, fw, rate, []int32{10, 50, 100}); err != nil {
			t.Fatal(err)
		}
	}
	w := startWatchOf(ctx, r.c, namespacesOf(lines))
	appMismatches := r.disrupt(ctx, lines, devices, kills, app)
	if err := r.waitLines(ctx, lines); err != nil {
		t.Error(err)
	}
	r.waitBalanced(ctx, products, 3)
	backwards, _ := w.stop()
	mismatches := len(backwards) + appMismatches
	for _, l := range lines {
		mismatches += r.checkLine(ctx, l)
	}
	r.logReplicas(ctx)
	if mismatches > 0 {
		t.Errorf("%d mismatches; counters backwards: %v", mismatches, backwards)
	}
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// startLines creates the Products and their fleets, and waits until each
// Product's owner took every device in.
func (r *rig) startLines(ctx context.Context, products, devices int, seed int64) []*line {
	var lines []*line
	for i := range products {
		l := &line{ns: fmt.Sprintf("line-%d", i), product: "plug", key: fmt.Sprintf("chaosplug%d", i)}
		if err := r.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: l.ns}}); err != nil {
			r.t.Fatal(err)
		}
		p := &otav1.Product{ObjectMeta: metav1.ObjectMeta{Namespace: l.ns, Name: l.product}, Spec: otav1.ProductSpec{ProductKey: l.key}}
		if err := r.c.Create(ctx, p); err != nil {
			r.t.Fatal(err)
		}
		lines = append(lines, l)
	}
	// Devices come once their Product's owner subscribed (Ready): what a
	// device sends before a product's first owner subscribes is not kept.
	for i, l := range lines {
		r.waitProduct(ctx, l, func(p *otav1.Product) bool {
			return apimeta.IsStatusConditionTrue(p.Status.Conditions, otav1.ConditionReady)
		})
		f, err := devicesim.Start(ctx, devicesim.Config{Broker: r.broker.URL, ProductKey: l.key, Devices: devices,
			ClientIDPrefix: l.key + "-", Profile: devicesim.ProfileSDK3, Hosts: map[string]string{downloadHost: r.dlAddr},
			ProgressInterval: 300 * time.Millisecond, FlashDuration: 300 * time.Millisecond, Seed: seed + int64(i),
			Failures: devicesim.Failures{DownloadFail: 0.06, FlashFail: 0.06, Transient: true}})
		if err != nil {
			r.t.Fatal(err)
		}
		r.t.Cleanup(f.Stop)
		l.fleet = f
	}
	for _, l := range lines {
		r.waitProduct(ctx, l, func(p *otav1.Product) bool { return p.Status.Devices == int64(devices) })
	}
	return lines
}

// waitProduct waits until cond holds for a line's Product.
func (r *rig) waitProduct(ctx context.Context, l *line, cond func(*otav1.Product) bool) {
	p := &otav1.Product{}
	err := lab.Poll(ctx, 3*time.Minute, func() (bool, error) {
		return r.c.Get(ctx, client.ObjectKey{Namespace: l.ns, Name: l.product}, p) == nil && cond(p), nil
	})
	if err != nil {
		r.t.Fatalf("Product %s/%s: %v (status %+v)", l.ns, l.product, err, p.Status)
	}
}

func namespacesOf(lines []*line) []string {
	var out []string
	for _, l := range lines {
		out = append(out, l.ns)
	}
	return out
}

func replicaOf(identity string) int {
	rest, ok := strings.CutPrefix(identity, "replica-")
	if !ok {
		return -1
	}
	i, err := strconv.Atoi(rest[:max(strings.IndexByte(rest, '-'), 0)])
	if err != nil {
		return -1
	}
	return i
}

// waitBalanced waits until every product is held and replicas live
// replicas hold an even share each.
func (r *rig) waitBalanced(ctx context.Context, products, replicas int) {
	var last map[string]string
	err := lab.Poll(ctx, 2*time.Minute, func() (bool, error) {
		h, err := r.leases(ctx)
		if err != nil {
			return false, nil
		}
		last = h
		count := map[int]int{}
		for _, id := range h {
			if i := replicaOf(id); i >= 0 {
				count[i]++
			}
		}
		low, high := products/replicas, (products+replicas-1)/replicas
		sum := 0
		for _, n := range count {
			if n < low || n > high {
				return false, nil
			}
			sum += n
		}
		return sum == products && len(count) == replicas, nil
	})
	if err != nil {
		r.t.Fatalf("%d products never balanced over %d replicas: %v (holders %v)", products, replicas, err, last)
	}
	r.t.Logf("products by replica: %v", last)
}
