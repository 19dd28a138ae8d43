package plugin

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/otafleet/otafleet/internal/dashboard"
)

func newDashboardCommand(o *rootOptions) *cobra.Command {
	var address string
	var port int
	cmd := &cobra.Command{
		Use:     "dashboard",
		Example: "  # Follow the rollouts of namespace plugs in a browser at http://127.0.0.1:3100\n  kubectl ota -n plugs dashboard",
		Short:   "Serve a local web UI of products, firmware and rollouts, as you",
		Long: "dashboard serves a web page on the loopback address that follows the namespace's\n" +
			"products, firmware and upgrade batches live, with the device table of each batch and\n" +
			"its pause, resume, promote, cancel and retry buttons. It reads and acts through your\n" +
			"kubeconfig, so your RBAC decides what it shows and allows. Ctrl-C stops it.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, ns, err := o.restConfig()
			if err != nil {
				return err
			}
			ln, err := listenLoopback(address, port)
			if err != nil {
				return err
			}
			defer ln.Close()
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			srv, err := dashboard.Start(ctx, dashboard.Options{Config: cfg, Namespace: ns})
			if err != nil {
				return err
			}
			fmt.Fprintf(o.streams.Out, "Dashboard of namespace %s at http://%s/ (Ctrl-C to stop)\n", ns, ln.Addr())
			return srv.Serve(ctx, ln)
		},
	}
	cmd.Flags().StringVar(&address, "address", "127.0.0.1", "Loopback address to listen on")
	cmd.Flags().IntVar(&port, "port", 3100, "Port to listen on")
	return cmd
}

// listenLoopback refuses other addresses: the dashboard acts with the
// user's credentials, so whoever reaches it acts as the user.
func listenLoopback(address string, port int) (net.Listener, error) {
	ip := net.ParseIP(address)
	if address != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("--address %s is not a loopback address: anyone who reaches the dashboard acts with your credentials", address)
	}
	return net.Listen("tcp", net.JoinHostPort(address, strconv.Itoa(port)))
}
