package plugin

import (
	"bytes"
	"context"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/steer"
)

func newStatusCommand(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the progress of a campaign",
	}
	var watch bool
	var interval time.Duration
	batch := &cobra.Command{
		Use:   "batch NAME",
		Short: "Show an UpgradeBatch: phase, wave, progress per state, failures and ETA",
		Args:  cobra.ExactArgs(1),
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
			return watchBatch(ctx, c, key, o.streams.Out, interval)
		}),
	}
	batch.Flags().BoolVarP(&watch, "watch", "w", false, "Refresh until the batch finishes")
	batch.Flags().DurationVar(&interval, "interval", 2*time.Second, "Refresh interval with --watch")
	batch.Aliases = []string{"ub", "upgradebatch"}
	cmd.AddCommand(batch, newStatusRunCommand(o))
	return cmd
}

// watchBatch redraws the batch on every tick and returns once it reached a
// final phase. Polling a single object is cheap and, unlike a watch, needs
// no reconnect logic for a view a human looks at.
func watchBatch(ctx context.Context, c client.Client, key client.ObjectKey, out io.Writer, interval time.Duration) error {
	if interval <= 0 {
		interval = 2 * time.Second
	}
	tty := isTerminal(out)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ub := &otav1.UpgradeBatch{}
		if err := c.Get(ctx, key, ub); err != nil {
			return err
		}
		// Render into a buffer first so the terminal never shows half a frame.
		var frame bytes.Buffer
		if tty {
			frame.WriteString("\x1b[H\x1b[2J")
		}
		renderBatch(&frame, ub, time.Now())
		if !tty {
			frame.WriteString("\n")
		}
		if _, err := out.Write(frame.Bytes()); err != nil {
			return err
		}
		if steer.Finished(ub.Status.Phase) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
