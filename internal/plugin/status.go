package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/steer"
)

func newStatusCommand(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "status",
		Short:   "Show the progress of a campaign",
		Example: "  kubectl ota status batch smart-plug-wifi-1.1.0 -w --timeout 2h",
	}
	var watch bool
	var timeout time.Duration
	batch := &cobra.Command{
		Use:   "batch NAME",
		Short: "Show an UpgradeBatch: phase, wave, progress per state, failures and ETA",
		Long: "Show an UpgradeBatch. With --watch, redraw it on every change until it finishes:\n" +
			"exit 0 when it completed, and non-zero with a one-line reason when it was aborted\n" +
			"or canceled, or --timeout passed first, so that a pipeline can gate on it.",
		Example: "  # Show a batch once\n" +
			"  kubectl ota status batch smart-plug-wifi-1.1.0\n" +
			"  # Follow it in a CI job; fail the job if it aborts or takes over two hours\n" +
			"  kubectl ota status batch smart-plug-wifi-1.1.0 -w --timeout 2h",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: o.completeNames(&otav1.UpgradeBatchList{}),
		RunE: o.runE(func(ctx context.Context, c client.Client, ns string, args []string) error {
			key := client.ObjectKey{Namespace: ns, Name: args[0]}
			if !watch {
				ub := &otav1.UpgradeBatch{}
				if err := c.Get(ctx, key, ub); err != nil {
					return err
				}
				renderBatch(o.streams.Out, ub, time.Now())
				return nil
			}
			wc, ok := c.(client.WithWatch)
			if !ok {
				return errors.New("the client cannot watch")
			}
			return watchBatch(ctx, wc, key, o.streams.Out, timeout)
		}),
	}
	batch.Flags().BoolVarP(&watch, "watch", "w", false, "Redraw on every change until the batch finishes; non-zero exit unless it completed")
	batch.Flags().DurationVar(&timeout, "timeout", 0, "With --watch, give up after this long and exit non-zero (0 waits forever)")
	batch.Flags().Duration("interval", 0, "Ignored")
	_ = batch.Flags().MarkDeprecated("interval", "--watch follows changes as the API server reports them")
	batch.Aliases = []string{"ub", "upgradebatch"}
	cmd.AddCommand(batch, newStatusRunCommand(o))
	return cmd
}

// watchBatch draws the batch, then redraws it on every change the API
// server reports until it finishes. The error, if any, is one line: why the
// batch did not complete, or that the timeout passed first.
func watchBatch(ctx context.Context, c client.WithWatch, key client.ObjectKey, out io.Writer, timeout time.Duration) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	f := &follower{key: key, out: out, tty: isTerminal(out)}
	for {
		ub, w, err := getAndWatch(ctx, c, key)
		if err != nil {
			return f.stopped(ctx, timeout, err)
		}
		done, err := f.follow(ctx, ub, w)
		w.Stop()
		if done {
			return f.stopped(ctx, timeout, err)
		}
		// The watch ended (API servers close them after a while, or the
		// resourceVersion expired): read again and watch from there.
	}
}

// getAndWatch reads the batch and watches it from the resourceVersion read,
// so that no change between the two is missed.
func getAndWatch(ctx context.Context, c client.WithWatch, key client.ObjectKey) (*otav1.UpgradeBatch, watch.Interface, error) {
	ub := &otav1.UpgradeBatch{}
	if err := c.Get(ctx, key, ub); err != nil {
		return nil, nil, err
	}
	w, err := c.Watch(ctx, &otav1.UpgradeBatchList{}, client.InNamespace(key.Namespace),
		client.MatchingFields{"metadata.name": key.Name},
		&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: ub.ResourceVersion}})
	return ub, w, err
}

// follower draws one batch as it changes.
type follower struct {
	key  client.ObjectKey
	out  io.Writer
	tty  bool
	last *otav1.UpgradeBatch
}

// follow draws ub and each newer version from w. It returns done once the
// batch finished or cannot be followed; false when the watch ended.
func (f *follower) follow(ctx context.Context, ub *otav1.UpgradeBatch, w watch.Interface) (bool, error) {
	for {
		if err := f.draw(ub); err != nil {
			return true, err
		}
		if steer.Finished(ub.Status.Phase) {
			return true, outcome(ub)
		}
		next, done, err := f.next(ctx, w)
		if next == nil {
			return done, err
		}
		ub = next
	}
}

// next waits for the batch's next version. nil with done=false means the
// watch ended and should be started again.
func (f *follower) next(ctx context.Context, w watch.Interface) (*otav1.UpgradeBatch, bool, error) {
	for {
		select {
		case <-ctx.Done():
			return nil, true, ctx.Err()
		case ev, ok := <-w.ResultChan():
			if !ok {
				return nil, false, nil
			}
			ub, isBatch := ev.Object.(*otav1.UpgradeBatch)
			switch {
			case ev.Type == watch.Deleted && isBatch && ub.Name == f.key.Name:
				return nil, true, fmt.Errorf("UpgradeBatch %s was deleted", f.key)
			case (ev.Type == watch.Added || ev.Type == watch.Modified) && isBatch && ub.Name == f.key.Name:
				return ub, false, nil
			case ev.Type == watch.Error:
				return nil, false, nil
			}
		}
	}
}

func (f *follower) draw(ub *otav1.UpgradeBatch) error {
	f.last = ub
	// Render into a buffer first so the terminal never shows half a frame.
	var frame bytes.Buffer
	if f.tty {
		frame.WriteString("\x1b[H\x1b[2J")
	}
	renderBatch(&frame, ub, time.Now())
	if !f.tty {
		frame.WriteString("\n")
	}
	_, err := f.out.Write(frame.Bytes())
	return err
}

// stopped turns the end of a watch into the command's error: the timeout
// says where the batch stood.
func (f *follower) stopped(ctx context.Context, timeout time.Duration, err error) error {
	if timeout > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		where := "not read yet"
		if ub := f.last; ub != nil {
			where = fmt.Sprintf("phase %s, wave %d/%d, %d/%d finished", orPlanned(ub.Status.Phase),
				ub.Status.CurrentWave, ub.Status.Waves, finishedCount(ub.Status.Counts), ub.Status.Counts.Total)
		}
		return fmt.Errorf("timed out after %s waiting for UpgradeBatch %s (%s)", timeout, f.key, where)
	}
	return err
}

// outcome is nil for a completed batch and the reason for any other end.
func outcome(ub *otav1.UpgradeBatch) error {
	switch ub.Status.Phase {
	case otav1.BatchCompleted:
		return nil
	case otav1.BatchAborted:
		reason := "abort policy"
		if c := apimeta.FindStatusCondition(ub.Status.Conditions, otav1.ConditionStalled); c != nil && c.Message != "" {
			reason = c.Message
		}
		return fmt.Errorf("UpgradeBatch %s/%s aborted: %s", ub.Namespace, ub.Name, reason)
	}
	return fmt.Errorf("UpgradeBatch %s/%s %s", ub.Namespace, ub.Name, ub.Status.Phase)
}

func orPlanned(p otav1.BatchPhase) otav1.BatchPhase {
	if p == "" {
		return otav1.BatchPlanned
	}
	return p
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
