// Command otafleet-lab is the playground: it starts a real control plane,
// an MQTT broker, MinIO and the otafleet manager on this machine, boots a
// simulated fleet, and walks through a rollout as a firmware team would:
// upload an image, verify it on three test devices, then roll it out in
// waves while the terminal shows the progress. kubectl works against it
// while it runs.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
)

type config struct {
	devices          int
	downloadFail     float64
	flashFail        float64
	progressInterval time.Duration
	brokerAddress    string
	deviceHTTP       bool
	deviceHost       string
	profile          string
	dataDir          string
	keepData         bool
	keepRunning      bool
	summaryJSON      bool
	seed             int64
	appAPI           bool
	appAPIAddress    string
	metricsAddress   string
	logLevel         string
}

func main() {
	var c config
	flag.IntVar(&c.devices, "devices", 1000, "Number of simulated devices (each with a wifi and an mcu module).")
	flag.Float64Var(&c.downloadFail, "download-fail", 0.01, "Share of devices whose download fails.")
	flag.Float64Var(&c.flashFail, "flash-fail", 0.01, "Share of devices whose flashing fails.")
	flag.DurationVar(&c.progressInterval, "progress-interval", time.Second, "Least time between two progress reports of one device (real devices: 3s).")
	flag.StringVar(&c.brokerAddress, "broker-address", "127.0.0.1:1883", "Where the MQTT broker listens; devices built on the vendor SDK only use port 1883.")
	flag.BoolVar(&c.deviceHTTP, "device-http", false, "Serve firmware downloads on port 80 so that real devices (which ignore URL ports) can download.")
	flag.StringVar(&c.deviceHost, "device-host", "", "With --device-http, the host name or address real devices reach this machine at (default: its first non-loopback IPv4 address).")
	flag.StringVar(&c.profile, "profile", "sdk3", "How the simulated devices behave: sdk3 or sdk4 (as the vendor's field SDKs do), or lenient.")
	flag.StringVar(&c.dataDir, "data-dir", "", "Directory for the playground's data (default: a temporary directory).")
	flag.BoolVar(&c.keepData, "keep-data", false, "Keep the data directory on exit.")
	flag.BoolVar(&c.keepRunning, "keep-running", false, "Keep everything running after the rollout, until Ctrl-C.")
	flag.BoolVar(&c.summaryJSON, "summary-json", false, "Print the final batch status as JSON on stdout (for scripts and tests).")
	flag.Int64Var(&c.seed, "seed", 1, "Seed of the simulated failures.")
	flag.BoolVar(&c.appAPI, "app-api", true, "Start the mobile-app API and print a token for a demo user and curl lines to try.")
	flag.StringVar(&c.appAPIAddress, "app-api-address", "127.0.0.1:8443", "Where the app API listens (a free loopback port if taken).")
	flag.StringVar(&c.metricsAddress, "metrics-address", "127.0.0.1:8080", "Where the manager serves /metrics (a free loopback port if taken).")
	flag.StringVar(&c.logLevel, "log-level", "info", "Level of the manager's log file: debug, info, error, or a number for more detail.")
	flag.Parse()

	// client-go reports the requests that shutdown cancels; the
	// playground's terminal is for the rollout (run sends them to the
	// manager's log file once it exists).
	klog.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "otafleet-lab:", err)
		os.Exit(1)
	}
}
