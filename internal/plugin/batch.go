package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// finished reports whether a batch reached a phase it never leaves.
func finished(p otav1.BatchPhase) bool {
	return p == otav1.BatchCompleted || p == otav1.BatchCanceled || p == otav1.BatchAborted
}

// getBatch reads a batch and refuses one that already finished, because a
// patch to it would be accepted and then do nothing.
func getBatch(ctx context.Context, c client.Client, ns, name, verb string) (*otav1.UpgradeBatch, error) {
	ub := &otav1.UpgradeBatch{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, ub); err != nil {
		return nil, err
	}
	if finished(ub.Status.Phase) {
		return nil, fmt.Errorf("upgradebatch %s is %s: nothing to %s", name, ub.Status.Phase, verb)
	}
	return ub, nil
}

// patchSpec sends {"spec": spec} as a JSON merge patch. A raw merge patch
// carries no resourceVersion, so it cannot conflict with the operator's
// status writes, and it touches only the fields named.
func patchSpec(ctx context.Context, c client.Client, ns, name string, spec map[string]any) (*otav1.UpgradeBatch, error) {
	data, err := json.Marshal(map[string]any{"spec": spec})
	if err != nil {
		return nil, err
	}
	ub := &otav1.UpgradeBatch{}
	ub.Namespace, ub.Name = ns, name
	if err := c.Patch(ctx, ub, client.RawPatch(types.MergePatchType, data), fieldOwner); err != nil {
		return nil, err
	}
	return ub, nil
}

func newPauseCommand(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:               "pause BATCH",
		Example:           "  # Hold a rollout while you look at its failures\n  kubectl ota pause smart-plug-wifi-1.1.0",
		ValidArgsFunction: o.completeNames(&otav1.UpgradeBatchList{}),
		Short:             "Stop pushing to new devices (spec.paused=true); devices already pushed carry on",
		Args:              cobra.ExactArgs(1),
		RunE: o.runE(func(ctx context.Context, c client.Client, ns string, args []string) error {
			if _, err := getBatch(ctx, c, ns, args[0], "pause"); err != nil {
				return err
			}
			if _, err := patchSpec(ctx, c, ns, args[0], map[string]any{"paused": true}); err != nil {
				return err
			}
			fmt.Fprintf(o.streams.Out, "upgradebatch/%s paused\n", args[0])
			return nil
		}),
	}
}

func newResumeCommand(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:               "resume BATCH",
		Example:           "  kubectl ota resume smart-plug-wifi-1.1.0",
		ValidArgsFunction: o.completeNames(&otav1.UpgradeBatchList{}),
		Short:             "Resume a paused batch (removes spec.paused)",
		Args:              cobra.ExactArgs(1),
		RunE: o.runE(func(ctx context.Context, c client.Client, ns string, args []string) error {
			ub, err := getBatch(ctx, c, ns, args[0], "resume")
			if err != nil {
				return err
			}
			if ub.Spec.Cancel != nil {
				return fmt.Errorf("upgradebatch %s is canceled and cannot be resumed", args[0])
			}
			// null deletes the field, leaving the manifest as short as the
			// user wrote it.
			if _, err := patchSpec(ctx, c, ns, args[0], map[string]any{"paused": nil}); err != nil {
				return err
			}
			fmt.Fprintf(o.streams.Out, "upgradebatch/%s resumed\n", args[0])
			return nil
		}),
	}
}

func newPromoteCommand(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:               "promote BATCH",
		Example:           "  # The first wave looks good: go on with the next\n  kubectl ota promote smart-plug-wifi-1.1.0",
		ValidArgsFunction: o.completeNames(&otav1.UpgradeBatchList{}),
		Short:             "End the pause after the current wave (spec.promotedWaves = status.currentWave)",
		Args:              cobra.ExactArgs(1),
		RunE: o.runE(func(ctx context.Context, c client.Client, ns string, args []string) error {
			ub, err := getBatch(ctx, c, ns, args[0], "promote")
			if err != nil {
				return err
			}
			wave := ub.Status.CurrentWave
			if wave == 0 {
				return fmt.Errorf("upgradebatch %s has not started its first wave yet", args[0])
			}
			if ub.Spec.PromotedWaves >= wave {
				fmt.Fprintf(o.streams.Out, "upgradebatch/%s wave %d already promoted\n", args[0], wave)
				return nil
			}
			if _, err := patchSpec(ctx, c, ns, args[0], map[string]any{"promotedWaves": wave}); err != nil {
				return err
			}
			fmt.Fprintf(o.streams.Out, "upgradebatch/%s promoted past wave %d/%d\n", args[0], wave, ub.Status.Waves)
			return nil
		}),
	}
}

func newCancelCommand(o *rootOptions) *cobra.Command {
	var states []string
	cmd := &cobra.Command{
		Use: "cancel BATCH",
		Example: "  kubectl ota cancel smart-plug-wifi-1.1.0\n" +
			"  # Cancel only the devices not pushed yet\n" +
			"  kubectl ota cancel smart-plug-wifi-1.1.0 --states CONFIRM,QUEUED",
		ValidArgsFunction: o.completeNames(&otav1.UpgradeBatchList{}),
		Short:             "Cancel a batch (sets spec.cancel); it cannot be resumed afterwards",
		Long: "Cancel stops pushing and cancels the tasks in the given states (all active\n" +
			"states by default: CONFIRM, QUEUED, NOTIFIED, IN_PROGRESS). Tasks in other states\n" +
			"carry on. A canceled batch cannot be resumed.",
		Args: cobra.ExactArgs(1),
		RunE: o.runE(func(ctx context.Context, c client.Client, ns string, args []string) error {
			cancel := map[string]any{}
			if len(states) > 0 {
				parsed, err := parseActiveStates(states)
				if err != nil {
					return err
				}
				cancel["states"] = parsed
			}
			if _, err := getBatch(ctx, c, ns, args[0], "cancel"); err != nil {
				return err
			}
			if _, err := patchSpec(ctx, c, ns, args[0], map[string]any{"cancel": cancel}); err != nil {
				return err
			}
			fmt.Fprintf(o.streams.Out, "upgradebatch/%s canceled\n", args[0])
			return nil
		}),
	}
	cmd.Flags().StringSliceVar(&states, "states", nil, "Task states to cancel (CONFIRM,QUEUED,NOTIFIED,IN_PROGRESS); default all active states")
	return cmd
}

// parseActiveStates checks --states before the API server's CEL rule does,
// so that a typo gets a message naming the allowed values.
func parseActiveStates(in []string) ([]otav1.TaskState, error) {
	out := make([]otav1.TaskState, 0, len(in))
	seen := map[otav1.TaskState]bool{}
	for _, s := range in {
		st := otav1.TaskState(strings.ToUpper(strings.TrimSpace(s)))
		if !st.Active() {
			return nil, fmt.Errorf("state %q cannot be canceled: use CONFIRM, QUEUED, NOTIFIED or IN_PROGRESS", s)
		}
		if !seen[st] {
			seen[st] = true
			out = append(out, st)
		}
	}
	return out, nil
}

// newConfirmCommand exists so that `kubectl ota confirm` explains where
// confirmation happens instead of failing as an unknown command: a device's
// user confirms in the mobile app, through the app API, which checks that
// the caller is bound to the device. An operator-side override would
// bypass that consent.
func newConfirmCommand(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "confirm --batch BATCH DEVICE...",
		Example: "  kubectl ota confirm --batch smart-plug-wifi-1.1.0 plug-0001  # explains the app API instead",
		Short:   "Explain how upgrades that need app confirmation are confirmed (always fails)",
		RunE: func(cmd *cobra.Command, args []string) error {
			return fmt.Errorf("upgrades are confirmed by the device's user through the app API " +
				"(POST /living/ota/confirm, called by the vendor's app on the user's behalf), not by kubectl; " +
				"to skip confirmation, create the batch without spec.confirmationRequired")
		},
	}
	// Accepted so that the documented form gets the explanation rather
	// than an unknown-flag error.
	cmd.Flags().String("batch", "", "Batch the devices belong to (unused)")
	_ = cmd.RegisterFlagCompletionFunc("batch", o.completeFlagNames(&otav1.UpgradeBatchList{}))
	return cmd
}
