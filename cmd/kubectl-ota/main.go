// Command kubectl-ota is the otafleet kubectl plugin: push firmware, watch
// and steer upgrade batches, and list devices from the inventory slices.
// Installed on the PATH it runs as `kubectl ota ...`. The logic lives in
// internal/plugin so that it can be tested against a real API server.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/otafleet/otafleet/internal/plugin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	if err := plugin.NewRootCommand(streams).ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
