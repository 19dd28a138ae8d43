package plugin

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/steer"
)

// The verbs' logic lives in package steer, shared with the dashboard's
// buttons; the commands here only parse arguments and print.

func newPauseCommand(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:               "pause BATCH",
		Example:           "  # Hold a rollout while you look at its failures\n  kubectl ota pause smart-plug-wifi-1.1.0",
		ValidArgsFunction: o.completeNames(&otav1.UpgradeBatchList{}),
		Short:             "Stop pushing to new devices (spec.paused=true); devices already pushed carry on",
		Args:              cobra.ExactArgs(1),
		RunE: o.runE(func(ctx context.Context, c client.Client, ns string, args []string) error {
			msg, err := steer.Pause(ctx, c, ns, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(o.streams.Out, msg)
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
			msg, err := steer.Resume(ctx, c, ns, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(o.streams.Out, msg)
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
			msg, err := steer.Promote(ctx, c, ns, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(o.streams.Out, msg)
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
			parsed, err := steer.ParseActiveStates(states)
			if err != nil {
				return err
			}
			msg, err := steer.Cancel(ctx, c, ns, args[0], parsed)
			if err != nil {
				return err
			}
			fmt.Fprintln(o.streams.Out, msg)
			return nil
		}),
	}
	cmd.Flags().StringSliceVar(&states, "states", nil, "Task states to cancel (CONFIRM,QUEUED,NOTIFIED,IN_PROGRESS); default all active states")
	return cmd
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
