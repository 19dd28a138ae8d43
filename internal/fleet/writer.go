package fleet

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// sliceWriter is the engine's way to the API server: it writes the slice
// snapshots a flush collected, on a few concurrent writers. The engine is
// the only writer of its slices, so a patch needs no resourceVersion and
// never conflicts.
type sliceWriter struct {
	client  client.Client
	writers int
	log     logr.Logger
	// count records each write's result in the engine's stats.
	count func(err error)
}

// writeAll runs the jobs on the engine's writers and reports whether every
// write succeeded.
func (w *sliceWriter) writeAll(ctx context.Context, jobs []writeJob) bool {
	var wg sync.WaitGroup
	var failed atomic.Bool
	work := make(chan *writeJob)
	for range min(w.writers, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				if !w.write(ctx, j) {
					failed.Store(true)
				}
			}
		}()
	}
	for i := range jobs {
		work <- &jobs[i]
	}
	close(work)
	wg.Wait()
	return !failed.Load()
}

func (w *sliceWriter) write(ctx context.Context, j *writeJob) bool {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	var err error
	if j.create {
		err = w.client.Create(ctx, j.obj)
		if apierrors.IsAlreadyExists(err) {
			// Left by an earlier leader that crashed before recording it.
			body, _ := json.Marshal(j.obj)
			err = w.client.Patch(ctx, j.obj, client.RawPatch(types.MergePatchType, body))
		}
	} else {
		err = w.patch(ctx, j)
	}
	w.count(err)
	if err != nil {
		w.log.Error(err, "Writing slice failed; retrying on the next flush", "slice", client.ObjectKeyFromObject(j.obj))
	}
	j.done(err == nil)
	return err == nil
}

// patch sends a slice's merge patch and asks for the answer as metadata
// only (PartialObjectMetadata): the writer does not read it, and decoding
// the whole slice that a PATCH returns was a tenth of the operator's CPU.
func (w *sliceWriter) patch(ctx context.Context, j *writeJob) error {
	gvk, err := w.client.GroupVersionKindFor(j.obj)
	if err != nil {
		return err
	}
	body, err := json.Marshal(j.patch)
	if err != nil {
		return err
	}
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(gvk)
	meta.Name, meta.Namespace = j.obj.GetName(), j.obj.GetNamespace()
	return w.client.Patch(ctx, meta, client.RawPatch(types.MergePatchType, body))
}
