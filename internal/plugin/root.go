package plugin

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otascheme "github.com/otafleet/otafleet/internal/scheme"
	"github.com/otafleet/otafleet/internal/steer"
)

// fieldOwner names the plugin in managedFields, so a GitOps tool's diff
// shows who changed spec.paused or spec.cancel.
const fieldOwner = steer.FieldOwner

// rootOptions are shared by every subcommand.
type rootOptions struct {
	flags   *genericclioptions.ConfigFlags
	streams genericiooptions.IOStreams
}

// NewRootCommand returns the `kubectl ota` command tree.
func NewRootCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &rootOptions{flags: genericclioptions.NewConfigFlags(true), streams: streams}
	cmd := &cobra.Command{
		Use:   "kubectl-ota",
		Short: "Push firmware and steer otafleet rollouts",
		Long: "kubectl ota pushes firmware images, shows and steers UpgradeBatches, and lists\n" +
			"devices from the inventory. Verbs change spec with a merge patch, never status.",
		Example: "  kubectl ota firmware push wifi-1.1.0.bin --product smart-plug --module wifi --version 1.1.0\n" +
			"  kubectl ota status batch smart-plug-wifi-1.1.0 -w --timeout 2h\n" +
			"  kubectl ota devices --product smart-plug --module wifi --version 1.0.0",
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl ota"},
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.ErrOut)
	o.flags.AddFlags(cmd.PersistentFlags())
	cmd.AddCommand(
		newFirmwareCommand(o),
		newStatusCommand(o),
		newDevicesCommand(o),
		newPauseCommand(o),
		newResumeCommand(o),
		newPromoteCommand(o),
		newCancelCommand(o),
		newRetryCommand(o),
		newConfirmCommand(o),
		newDashboardCommand(o),
	)
	return cmd
}

// client builds a client for the kubeconfig flags and returns it with the
// namespace to work in (the --namespace flag or the context's).
func (o *rootOptions) client() (client.WithWatch, string, error) {
	cfg, ns, err := o.restConfig()
	if err != nil {
		return nil, "", err
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: otascheme.New()})
	if err != nil {
		return nil, "", fmt.Errorf("creating the client: %w", err)
	}
	return c, ns, nil
}

// restConfig returns the kubeconfig flags' REST config, as the user, and
// the namespace to work in (the --namespace flag or the context's).
func (o *rootOptions) restConfig() (*rest.Config, string, error) {
	cfg, err := o.flags.ToRESTConfig()
	if err != nil {
		return nil, "", err
	}
	// client-go's default of 5 requests per second would make paging
	// through a large inventory crawl; kubectl uses similar numbers.
	cfg.QPS, cfg.Burst = 50, 100
	ns, _, err := o.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, "", err
	}
	return cfg, ns, nil
}

// runE adapts a function that needs a client and namespace to cobra.
func (o *rootOptions) runE(fn func(ctx context.Context, c client.Client, ns string, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, ns, err := o.client()
		if err != nil {
			return err
		}
		return fn(cmd.Context(), c, ns, args)
	}
}
