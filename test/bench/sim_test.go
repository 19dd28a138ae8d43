package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/otafleet/otafleet/internal/devicesim"
)

// simulator is the simulated fleet, in this process or in its own.
type simulator struct {
	fleet *devicesim.Fleet // nil when the simulator runs as a process
	cmd   *exec.Cmd
	once  sync.Once
}

func (s *simulator) stop() {
	s.once.Do(func() {
		if s.fleet != nil {
			s.fleet.Stop()
		}
		if s.cmd != nil {
			// SIGINT first, so that the simulator writes its CPU profile.
			_ = s.cmd.Process.Signal(os.Interrupt)
			exited := make(chan struct{})
			go func() { _ = s.cmd.Wait(); close(exited) }()
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = s.cmd.Process.Kill()
				<-exited
			}
		}
	})
}

// upgraded counts the devices that have informed the new version; only an
// in-process fleet can tell.
func (s *simulator) upgraded() (func() int64, bool) {
	if s.fleet == nil {
		return nil, false
	}
	return func() int64 { return int64(s.fleet.Summary().Outcomes[devicesim.OutcomeSucceeded]) }, true
}

// startSimulator starts n multiplexed devices. With downloads they fetch
// the image through its pre-signed URL; without, they upgrade at once.
func startSimulator(ctx context.Context, cfg devicesim.Config, process bool) (*simulator, error) {
	if !process {
		f, err := devicesim.Start(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return &simulator{fleet: f}, f.WaitInformed(ctx)
	}
	bin, err := buildDevicesim(ctx)
	if err != nil {
		return nil, err
	}
	args := []string{"--broker", cfg.Broker, "--product", cfg.ProductKey, "--devices", strconv.Itoa(cfg.Devices),
		"--prefix", cfg.NamePrefix, "--wildcard=" + strconv.FormatBool(cfg.WildcardSubscriptions),
		"--instant=" + strconv.FormatBool(cfg.Instant), "--progress-interval", cfg.ProgressInterval.String(),
		"--report-every", "0", "--profile", string(cfg.Profile), "--hosts", hostsFlag(cfg.Hosts)}
	if path := os.Getenv("BENCH_CPUPROFILE"); path != "" {
		args = append(args, "--cpuprofile", path+"-simulator")
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &simulator{cmd: cmd}, nil
}

// buildDevicesim builds cmd/devicesim into the user's cache (the build
// cache makes a second build instant). $BENCH_DEVICESIM names a binary
// built elsewhere instead: another commit's, to compare two simulators on
// the same bench back to back.
func buildDevicesim(ctx context.Context) (string, error) {
	if bin := os.Getenv("BENCH_DEVICESIM"); bin != "" {
		return bin, nil
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "otafleet", "bench", "devicesim")
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/otafleet/otafleet/cmd/devicesim").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building devicesim: %v: %s", err, out)
	}
	return bin, nil
}

// hostsFlag writes Config.Hosts as devicesim's --hosts flag.
func hostsFlag(hosts map[string]string) string {
	var parts []string
	for h, addr := range hosts {
		parts = append(parts, h+"="+addr)
	}
	return strings.Join(parts, ",")
}
