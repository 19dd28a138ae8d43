package operator

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/fleet"
	"github.com/otafleet/otafleet/internal/mqtt"
	"github.com/otafleet/otafleet/internal/shard"
)

// subscribeWait bounds how long a shard's engine waits for the product's
// first subscription before it rebuilds.
const subscribeWait = 10 * time.Second

// setupShards gives each product to one replica by Lease: the replica
// runs an engine and an MQTT gateway for each product it owns.
func setupShards(mgr ctrl.Manager, o Options, urls fleet.URLSigner, mcfg mqtt.Config, parts *Components) error {
	ns, err := leaseNamespace(o.LeaderElectionNS)
	if err != nil {
		return err
	}
	router := shard.NewRouter(func() bool {
		select {
		case <-mgr.Elected():
			return true
		default:
			return false
		}
	})
	collector := fleet.NewFleetCollector(router.Engines)
	if err := registry.Register(collector); err != nil {
		return err
	}
	log := ctrl.Log.WithName("shard")
	sm, err := shard.NewManager(shard.Config{
		Namespace: ns, LeaseDuration: o.ProductLeases.Duration, RetryPeriod: o.ProductLeases.RetryPeriod,
		Client: mgr.GetClient(), Reader: mgr.GetAPIReader(),
		Keys: func(ctx context.Context) ([]string, error) { return productKeys(ctx, mgr) },
		Build: func(pk string) (shard.Shard, error) {
			return buildShard(mgr, o, urls, mcfg, pk)
		},
		Retire: collector.Retire, Log: log, AppAPIURL: appAPIURL(o.AppAPI),
	}, router)
	if err != nil {
		return err
	}
	parts.Router = router
	return mgr.Add(sm)
}

// buildShard makes one product's engine and gateway, the gateway with the
// product's own persistent session.
func buildShard(mgr ctrl.Manager, o Options, urls fleet.URLSigner, mcfg mqtt.Config, pk string) (shard.Shard, error) {
	engine := fleet.New(mgr.GetClient(), mgr.GetAPIReader(), nil, urls, engineOptions(o, pk),
		ctrl.Log.WithName("fleet").WithValues("productKey", pk))
	mcfg.ClientID = mcfg.ClientID + "-" + pk
	mcfg.ProductKeys = []string{pk}
	gw, err := mqtt.New(mcfg, engine)
	if err != nil {
		return shard.Shard{}, err
	}
	engine.SetPublisher(gw)
	gw.StayFor = engine.Stopped()
	run := func(ctx context.Context) error {
		var wg sync.WaitGroup
		var engineErr error
		wg.Go(func() { _ = gw.Start(ctx) })
		// The product's session may be new: what devices send before its
		// first SUBSCRIBE is not kept by the broker, so the Product is
		// taken in (Ready) only once the gateway subscribed, or after
		// subscribeWait when the broker is away (pushes wait for it).
		sub, cancel := context.WithTimeout(ctx, subscribeWait)
		_ = gw.WaitFor(sub, func(s mqtt.ConnectionState) bool { return s.Subscribed })
		cancel()
		wg.Go(func() { engineErr = engine.Start(ctx) })
		wg.Wait()
		return engineErr
	}
	return shard.Shard{Engine: engine, Run: run}, nil
}

// appAPIURL is where this replica's app API takes requests the others
// forward: the advertised URL, or the pod's address and the bind port.
func appAPIURL(a AppAPIOptions) string {
	if a.BindAddress == "" || a.AdvertiseURL != "" {
		return a.AdvertiseURL
	}
	ip := os.Getenv("POD_IP")
	_, port, err := net.SplitHostPort(a.BindAddress)
	if ip == "" || err != nil {
		return ""
	}
	scheme := "http"
	if len(a.TLSCertPEM) > 0 {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(ip, port)
}

// productKeys lists the keys of every Product in the manager's cache.
func productKeys(ctx context.Context, mgr ctrl.Manager) ([]string, error) {
	var list otav1.ProductList
	if err := mgr.GetClient().List(ctx, &list); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(list.Items))
	for _, p := range list.Items {
		keys = append(keys, p.Spec.ProductKey)
	}
	slices.Sort(keys)
	return slices.Compact(keys), nil
}

// leaseNamespace is where the product Leases live: the leader election's
// namespace, by default the pod's.
func leaseNamespace(ns string) (string, error) {
	if ns != "" {
		return ns, nil
	}
	b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	if err != nil {
		return "", fmt.Errorf("product Leases need a namespace: --leader-election-namespace, or run in a pod")
	}
	return strings.TrimSpace(string(b)), nil
}
