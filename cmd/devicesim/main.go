// Command devicesim runs a simulated fleet of OTA devices against an MQTT
// broker (see package internal/devicesim), prints progress lines while it
// runs and a summary, as text or JSON, when it ends.
//
//	devicesim -broker tcp://127.0.0.1:1883 -product a1Prod -devices 10000 -modules wifi=1.0.0,mcu=2.1
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"

	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/testserver"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "devicesim:", err)
		os.Exit(1)
	}
}

type options struct {
	cfg           devicesim.Config
	modules       string
	tlsCA         string
	embedded      bool
	duration      time.Duration
	untilInformed bool
	jsonOut       bool
	reportEvery   time.Duration
	verbose       bool
	record        string
	cpuProfile    string
}

func parse(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	c := &o.cfg
	fs := flag.NewFlagSet("devicesim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Broker, "broker", "tcp://127.0.0.1:1883", "MQTT broker URL (tcp://, ssl://)")
	fs.StringVar(&c.Username, "username", "", "MQTT user name")
	fs.StringVar(&c.Password, "password", os.Getenv("DEVICESIM_PASSWORD"), "MQTT password (default $DEVICESIM_PASSWORD)")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "PEM file of CAs to trust for ssl:// brokers (default: system roots)")
	fs.BoolVar(&o.embedded, "embedded-broker", false, "run an embedded Mochi broker on a free loopback port and use it")
	fs.StringVar(&c.ProductKey, "product", "a1SimProduct", "product key of every device")
	fs.IntVar(&c.Devices, "devices", 10, "number of devices")
	fs.StringVar(&c.NamePrefix, "prefix", "dev-", "device name prefix")
	fs.StringVar(&o.modules, "modules", "default=1.0.0", "modules and starting versions, name=version,...")
	mode := fs.String("mode", "", "connection mode: multiplexed or per-device (default multiplexed; per-device for -profile sdk4)")
	profile := fs.String("profile", string(devicesim.ProfileLenient),
		"device behaviour: lenient, sdk3 (C SDK 3.x) or sdk4 (LinkSDK 4.x); the strict ones count contract violations")
	hosts := fs.String("hosts", "", "strict profiles: download hosts mapped to the ip:port standing for their default port, host=ip:port,...")
	fs.IntVar(&c.Connections, "connections", 0, "multiplexed connections (default one per 2,500 devices)")
	fs.BoolVar(&c.WildcardSubscriptions, "wildcard", false, "multiplexed: subscribe with product-wide wildcards")
	fs.BoolVar(&c.Instant, "instant", false, "skip downloads and pacing: report 0 then 100 at once")
	fs.DurationVar(&c.ProgressInterval, "progress-interval", 3*time.Second, "minimum time between progress reports of a device")
	fs.DurationVar(&c.FlashDuration, "flash", 0, "time spent flashing")
	fs.BoolVar(&c.AskOnBoot, "ask-on-boot", false, "ask for a pending upgrade after informing (firmware/get)")
	fs.BoolVar(&c.LegacyRequest, "legacy-request", false, "ask on the older /ota/device/request topic instead")
	fs.Float64Var(&c.Failures.DownloadFail, "fail-download", 0, "rate of download failures (step -2)")
	fs.Float64Var(&c.Failures.DigestMismatch, "fail-digest", 0, "rate of digest mismatches (step -3)")
	fs.Float64Var(&c.Failures.FlashFail, "fail-flash", 0, "rate of flash failures (step -4)")
	fs.Float64Var(&c.Failures.UpgradeFail, "fail-upgrade", 0, "rate of other upgrade failures (step -1)")
	fs.Float64Var(&c.Failures.Revert, "fail-revert", 0, "rate of devices that inform the new version, then roll back to the old one")
	fs.DurationVar(&c.Failures.RevertAfter, "revert-after", time.Second, "how long a reverting device runs the new version")
	fs.Float64Var(&c.Failures.NeverFinish, "fail-stuck", 0, "rate of devices that never finish")
	fs.Float64Var(&c.Failures.GoOffline, "fail-offline", 0, "rate of devices that go offline during the upgrade")
	fs.Float64Var(&c.Failures.SlowDownload, "slow-download", 0, "rate of slow downloads")
	fs.DurationVar(&c.Failures.SlowDownloadDelay, "slow-delay", 30*time.Second, "extra time of a slow download")
	fs.DurationVar(&c.Failures.OfflineFor, "offline-for", 0, "how long offline devices stay away (0: for good)")
	fs.BoolVar(&c.Failures.Transient, "transient", false, "draw failures again on every attempt")
	fs.Int64Var(&c.Seed, "seed", 1, "seed of the failure injection")
	fs.DurationVar(&o.duration, "duration", 0, "stop after this long (0: until interrupted)")
	fs.BoolVar(&o.untilInformed, "until-informed", false, "stop once every device has informed (for measurements)")
	fs.BoolVar(&o.jsonOut, "json", false, "print the final summary as JSON")
	fs.DurationVar(&o.reportEvery, "report-every", 10*time.Second, "print a progress line this often (0: never)")
	fs.BoolVar(&o.verbose, "v", false, "log what devices refuse")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file (to see what the simulator costs)")
	fs.StringVar(&o.record, "record", "", "on exit, write every device's versions, outcome and upgrade attempts to this file, one JSON object a line")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	c.Mode = devicesim.ConnMode(*mode)
	c.Profile = devicesim.Profile(*profile)
	var err error
	if c.Hosts, err = parseHosts(*hosts); err != nil {
		return nil, err
	}
	if c.Modules, err = parseModules(o.modules); err != nil {
		return nil, err
	}
	if o.tlsCA != "" {
		pem, err := os.ReadFile(o.tlsCA)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificate in %s", o.tlsCA)
		}
		c.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return o, nil
}

func parseModules(s string) ([]devicesim.Module, error) {
	var out []devicesim.Module
	for _, part := range strings.Split(s, ",") {
		name, version, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("module %q: want name=version", part)
		}
		out = append(out, devicesim.Module{Name: name, Version: version})
	}
	return out, nil
}

func parseHosts(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		host, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("host %q: want host=ip:port", part)
		}
		out[host] = addr
	}
	return out, nil
}

func run(args []string, stdout, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	if o.verbose {
		o.cfg.Logger = funcr.New(func(prefix, args string) { fmt.Fprintln(stderr, prefix, args) }, funcr.Options{})
	} else {
		o.cfg.Logger = logr.Discard()
	}
	if o.embedded {
		// 4.x devices need the broker to subscribe them.
		b, err := testserver.StartMochi(testserver.MochiOptions{AutoSubscribeOTA: o.cfg.Profile == devicesim.ProfileSDK4})
		if err != nil {
			return err
		}
		defer func() { _ = b.Stop() }()
		o.cfg.Broker = b.URL
		fmt.Fprintf(stderr, "embedded broker on %s\n", b.URL)
	}

	if o.cpuProfile != "" {
		stopProfile, err := startProfile(o.cpuProfile)
		if err != nil {
			return err
		}
		defer stopProfile()
	}
	start := time.Now()
	fleet, err := devicesim.Start(ctx, o.cfg)
	if err != nil {
		return err
	}
	defer fleet.Stop()
	connected := time.Since(start)
	fmt.Fprintf(stderr, "%d devices connected and subscribed in %v\n", o.cfg.Devices, connected.Round(time.Millisecond))
	informed := make(chan time.Duration, 1)
	go func() {
		if fleet.WaitInformed(ctx) == nil {
			informed <- time.Since(start)
		}
	}()

	var tick <-chan time.Time
	if o.reportEvery > 0 {
		t := time.NewTicker(o.reportEvery)
		defer t.Stop()
		tick = t.C
	}
	for done := false; !done; {
		select {
		case d := <-informed:
			fmt.Fprintf(stderr, "all %d devices informed in %v; %s\n", o.cfg.Devices, d.Round(time.Millisecond), memory())
			done = o.untilInformed
		case <-tick:
			fmt.Fprintln(stderr, fleet.Summary().Line())
		case <-ctx.Done():
			done = true
		}
	}
	fleet.Stop()
	if o.record != "" {
		if err := writeRecord(fleet, o.record); err != nil {
			return err
		}
	}
	s := fleet.Summary()
	if o.jsonOut {
		_, err = fmt.Fprintf(stdout, "%s\n", s.JSON())
		return err
	}
	_, err = fmt.Fprint(stdout, s.String())
	return err
}

// startProfile starts a CPU profile into path.
func startProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}

// writeRecord writes the fleet's per-device record to path.
func writeRecord(fleet *devicesim.Fleet, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := fleet.WriteRecord(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing the record: %w", err)
	}
	return f.Close()
}

// memory describes the process's memory: Go heap in use and peak RSS.
func memory() string {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss := "unknown"
	if data, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				rss = strings.TrimSpace(v)
			}
		}
	}
	return fmt.Sprintf("heap in use %d MiB, peak RSS %s", ms.HeapInuse>>20, rss)
}
