// Command otafleet-download runs the download service: it serves firmware
// images to devices at the short signed URLs the manager hands out,
// streaming them from S3-compatible storage. It keeps no state, so it runs
// as a plain Deployment with as many replicas as the fleet's downloads need.
// See docs/download.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-logr/logr"
)

// options are the command's flags.
type options struct {
	bindAddress, metricsAddress string
	s3Endpoint, s3Bucket        string
	s3Region                    string
	s3Insecure                  bool
	accessKey, secretKey        string // from the environment, never flags
	secretFile                  string
	egressBytesPerSecond        int64
	cacheControl                bool
	tlsCert, tlsKey             string
	shutdownTimeout             time.Duration
}

// parseFlags reads args, and credentials through getenv; usage and flag
// errors go to output.
func parseFlags(args []string, getenv func(string) string, output io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("otafleet-download", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&o.bindAddress, "bind-address", ":8080", "Address devices download from (the Service maps port 80 here).")
	fs.StringVar(&o.metricsAddress, "metrics-bind-address", ":8081", "Address of /metrics, /healthz and /readyz; 0 disables it.")
	fs.StringVar(&o.s3Endpoint, "s3-endpoint", getenv("OTAFLEET_S3_ENDPOINT"), "host:port of the S3-compatible object storage API.")
	fs.StringVar(&o.s3Bucket, "s3-bucket", "otafleet-firmware", "Bucket holding firmware images (the manager's --s3-bucket).")
	fs.StringVar(&o.s3Region, "s3-region", "us-east-1", "Region of the bucket.")
	fs.BoolVar(&o.s3Insecure, "s3-insecure", false, "Use plain HTTP to object storage.")
	fs.StringVar(&o.secretFile, "secret-file", "", "File holding the URL signing secret (key \"secret\" of the otafleet-download Secret, shared with the manager).")
	fs.Int64Var(&o.egressBytesPerSecond, "egress-bytes-per-second", 0, "Cap on the bytes per second this replica sends, all downloads together; 0 is no cap.")
	fs.BoolVar(&o.cacheControl, "cdn-cache-control", false, "Let a CDN cache answers until their URL expires (CDN mode).")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "Serve HTTPS with this certificate (PEM); with --tls-key.")
	fs.StringVar(&o.tlsKey, "tls-key", "", "Private key (PEM) of --tls-cert.")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 25*time.Second, "How long downloads in flight may finish after SIGTERM.")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.accessKey, o.secretKey = getenv("OTAFLEET_S3_ACCESS_KEY"), getenv("OTAFLEET_S3_SECRET_KEY")
	return o, o.validate()
}

func (o options) validate() error {
	switch {
	case o.s3Endpoint == "":
		return errors.New("--s3-endpoint is required (host:port of the object storage API)")
	case o.s3Bucket == "":
		return errors.New("--s3-bucket is required")
	case o.secretFile == "":
		return errors.New("--secret-file is required: mount key \"secret\" of the otafleet-download Secret")
	case o.egressBytesPerSecond < 0:
		return fmt.Errorf("--egress-bytes-per-second %d is negative; 0 means no cap", o.egressBytesPerSecond)
	case (o.tlsCert == "") != (o.tlsKey == ""):
		return errors.New("--tls-cert and --tls-key go together")
	case o.accessKey == "" || o.secretKey == "":
		return errors.New("set OTAFLEET_S3_ACCESS_KEY and OTAFLEET_S3_SECRET_KEY (from the otafleet-s3 Secret)")
	}
	return nil
}

func main() {
	log := logr.FromSlogHandler(slog.NewJSONHandler(os.Stderr, nil))
	o, err := parseFlags(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "otafleet-download:", err)
		os.Exit(2)
	}
	// Kubernetes stops a pod with SIGTERM; Ctrl-C is SIGINT.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, o, log, nil); err != nil {
		log.Error(err, "Download service stopped")
		os.Exit(1)
	}
}
