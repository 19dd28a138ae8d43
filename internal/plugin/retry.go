package plugin

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/steer"
)

// AnnotationRetryOf marks a batch created by `kubectl ota retry` with the
// batch it re-runs.
const AnnotationRetryOf = steer.AnnotationRetryOf

func newRetryCommand(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "retry BATCH",
		Short: "Re-run the FAILED and TIMED_OUT devices of a batch as a new batch <batch>-retry-N",
		Long: "retry reads the batch's UpgradeSlices and creates a new UpgradeBatch with a List\n" +
			"scope holding the devices that failed or timed out. Up to 1000 names are inlined;\n" +
			"more are written to a ConfigMap of the same name (one name a line), owned by the new\n" +
			"batch so that it is deleted with it. The new batch copies firmware, source versions,\n" +
			"rate, retry, abort, timeout, confirmation, overwrite and tags; not waves or schedule.",
		Example: "  # After smart-plug-wifi-1.1.0 finished with failures\n" +
			"  kubectl ota retry smart-plug-wifi-1.1.0\n" +
			"  kubectl ota status batch smart-plug-wifi-1.1.0-retry-1 -w",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: o.completeNames(&otav1.UpgradeBatchList{}),
		RunE: o.runE(func(ctx context.Context, c client.Client, ns string, args []string) error {
			nb, n, err := steer.Retry(ctx, c, ns, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(o.streams.Out, "upgradebatch/%s created with %d devices\n", nb.Name, n)
			return nil
		}),
	}
}
