package dashboard

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// watcher is the informer cache of one namespace plus a broadcast of
// "something changed" to the open pages.
type watcher struct {
	cache cache.Cache

	mu      sync.Mutex
	changed chan struct{}     // closed and replaced on every change
	slices  map[string]uint64 // batch name -> generation of its slices
}

// startWatcher watches the four kinds the pages show and the UpgradeSlices
// of batches (not of verification runs, which report devices in status).
func startWatcher(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme, ns string, timeout time.Duration) (*watcher, error) {
	c, err := cache.New(cfg, cache.Options{
		Scheme:            scheme,
		DefaultNamespaces: map[string]cache.Config{ns: {}},
		ByObject: map[client.Object]cache.ByObject{&otav1.UpgradeSlice{}: {
			Label: labels.SelectorFromSet(labels.Set{otav1.LabelKind: string(otav1.KindUpgradeBatch)}),
		}},
		// managedFields are a good part of a small object and the pages
		// never show them.
		DefaultTransform: cache.TransformStripManagedFields(),
	})
	if err != nil {
		return nil, err
	}
	w := &watcher{cache: c, changed: make(chan struct{}), slices: map[string]uint64{}}
	kinds := []client.Object{&otav1.Product{}, &otav1.Firmware{}, &otav1.VerificationRun{}, &otav1.UpgradeBatch{}, &otav1.UpgradeSlice{}}
	for _, k := range kinds {
		inf, err := c.GetInformer(ctx, k)
		if err != nil {
			return nil, err
		}
		if _, err := inf.AddEventHandler(w.handler()); err != nil {
			return nil, err
		}
	}
	go func() { _ = c.Start(ctx) }()
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if !c.WaitForCacheSync(sctx) {
		return nil, fmt.Errorf("the first list of products, firmwares, verification runs, upgrade batches and "+
			"upgrade slices in namespace %s did not complete within %s: the dashboard needs get, list and watch "+
			"on them (check `kubectl auth can-i list upgradebatches -n %s`)", ns, timeout, ns)
	}
	return w, nil
}

func (w *watcher) handler() toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { w.touch(obj, "") },
		UpdateFunc: func(old, obj any) {
			if o, ok := old.(client.Object); ok {
				w.touch(obj, o.GetResourceVersion())
			}
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			w.touch(obj, "")
		},
	}
}

// touch records a change. A periodic resync delivers updates with an
// unchanged resourceVersion; they change nothing, so a batch's device index
// is rebuilt only when one of its slices really changed.
func (w *watcher) touch(obj any, oldRV string) {
	o, ok := obj.(client.Object)
	if !ok || (oldRV != "" && o.GetResourceVersion() == oldRV) {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if s, ok := o.(*otav1.UpgradeSlice); ok {
		w.slices[s.Labels[otav1.LabelCampaign]]++
	}
	close(w.changed)
	w.changed = make(chan struct{})
}

// wait returns a channel closed at the next change.
func (w *watcher) wait() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.changed
}

// sliceGen is the generation of a batch's slices: it grows whenever one of
// them is added, changed or deleted.
func (w *watcher) sliceGen(batch string) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.slices[batch]
}

// list reads from the cache without the deep copy: the views only read,
// and copying a 100,000-device batch's slices on every request would cost
// more than building its page.
func (w *watcher) list(list client.ObjectList, opts ...client.ListOption) error {
	opts = append(opts, client.UnsafeDisableDeepCopy)
	return w.cache.List(context.Background(), list, opts...)
}
