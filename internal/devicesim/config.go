package devicesim

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/otafleet/otafleet/internal/protocol"
)

// ConnMode chooses how devices share MQTT connections.
type ConnMode string

// Connection modes.
const (
	// PerDevice gives every device its own connection, as in the field.
	PerDevice ConnMode = "per-device"
	// Multiplexed carries many devices over each of Config.Connections.
	Multiplexed ConnMode = "multiplexed"
)

// Module is a firmware module of every simulated device and the version it
// starts with.
type Module struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Failures are the rates (0..1) at which devices fail an upgrade attempt,
// each in its own way. A device gets at most one of them; the rates must sum
// to at most 1.
type Failures struct {
	// DownloadFail reports step -2 instead of downloading.
	DownloadFail float64 `json:"downloadFail,omitempty"`
	// DigestMismatch downloads, then reports step -3 as if the digest
	// differed.
	DigestMismatch float64 `json:"digestMismatch,omitempty"`
	// FlashFail downloads and verifies, then reports step -4.
	FlashFail float64 `json:"flashFail,omitempty"`
	// NeverFinish reports step 0 and some progress, then falls silent.
	NeverFinish float64 `json:"neverFinish,omitempty"`
	// GoOffline reports step 0, then goes offline (drops its connection in
	// per-device mode, falls silent in multiplexed mode).
	GoOffline float64 `json:"goOffline,omitempty"`
	// SlowDownload succeeds, but the download takes SlowDownloadDelay longer.
	SlowDownload float64 `json:"slowDownload,omitempty"`
	// UpgradeFail downloads and verifies, then reports step -1, the
	// protocol's catch-all "upgrade failed" (a device that refuses to
	// install, say for low battery).
	UpgradeFail float64 `json:"upgradeFail,omitempty"`
	// Revert upgrades and informs the new version, then after RevertAfter
	// rolls back and informs the old version again (a bootloader's
	// fallback): what a campaign's soak catches.
	Revert float64 `json:"revert,omitempty"`

	// SlowDownloadDelay is the extra download time; default 30 s.
	SlowDownloadDelay time.Duration `json:"slowDownloadDelay,omitempty"`
	// RevertAfter is how long a reverting device runs the new version
	// before it rolls back; default 1 s.
	RevertAfter time.Duration `json:"revertAfter,omitempty"`
	// OfflineFor is how long an offline device stays away before it comes
	// back and informs its (unchanged) versions; zero means for good.
	OfflineFor time.Duration `json:"offlineFor,omitempty"`
	// Transient draws again for every attempt (hash of seed, name and
	// attempt number), so a retry can succeed; by default a device fails
	// the same way every time.
	Transient bool `json:"transient,omitempty"`
}

func (f Failures) total() float64 {
	return f.DownloadFail + f.DigestMismatch + f.FlashFail + f.NeverFinish + f.GoOffline + f.SlowDownload + f.UpgradeFail + f.Revert
}

// Config describes a simulated fleet.
type Config struct {
	// Broker is the broker URL, e.g. tcp://127.0.0.1:1883.
	Broker string
	// Username, Password and TLS authenticate to the broker; optional.
	Username string
	Password string
	TLS      *tls.Config
	// ProductKey is the product of every device.
	ProductKey string
	// Devices is the fleet size.
	Devices int
	// NamePrefix prefixes the zero-padded device index: "dev-000042".
	// Default "dev-".
	NamePrefix string
	// Modules and their starting versions; default one "default" module
	// at "1.0.0".
	Modules []Module
	// Mode is PerDevice or Multiplexed (default).
	Mode ConnMode
	// Connections is the number of multiplexed connections; default one per
	// 2,500 devices.
	Connections int
	// WildcardSubscriptions makes multiplexed connections subscribe with
	// product-wide wildcards instead of per-device topics.
	WildcardSubscriptions bool
	// ClientIDPrefix prefixes MQTT client IDs; default "devicesim-".
	ClientIDPrefix string
	// Instant skips downloads (no HTTP at all) and all pacing: progress 0
	// then 100 immediately. For benchmarks of the operator alone.
	Instant bool
	// ProgressInterval is the minimum time between two progress reports of
	// one device; default 3 s, what devices are asked to respect.
	ProgressInterval time.Duration
	// FlashDuration is how long "flashing" takes; default 0.
	FlashDuration time.Duration
	// RebootAfterFlash makes a device reboot after flashing, as real ones
	// do: in per-device mode it reconnects, and either way it then informs
	// every module (the new version among them) instead of only the
	// upgraded one.
	RebootAfterFlash bool
	// AskOnBoot makes every device ask for a pending upgrade of each module
	// after informing: firmware/get, or the older request topic with
	// LegacyRequest.
	AskOnBoot bool
	// LegacyRequest makes devices use /ota/device/request (older SDKs)
	// instead of firmware/get, and subscribe to it for the reply.
	LegacyRequest bool
	// Failures injects failures; see Failures.
	Failures Failures
	// Plans fixes what the named devices do with every upgrade attempt,
	// whatever Failures draws: a test that needs one particular device to
	// hang or fail says so here. Every name must be one of the fleet's.
	Plans map[string]Plan
	// Seed makes failure injection reproducible.
	Seed int64
	// HTTPClient downloads images; default a client with a 10 minute timeout.
	HTTPClient *http.Client
	// PublishTimeout bounds one QoS 1 publish; default 30 s.
	PublishTimeout time.Duration
	// ConnectConcurrency bounds simultaneous connection attempts at start;
	// default 64.
	ConnectConcurrency int
	// Logger receives the simulator's (few) logs; default discards.
	Logger logr.Logger

	// Profile is how closely devices imitate a generation of the vendor's
	// SDK: "" or ProfileLenient (default), ProfileSDK3 or ProfileSDK4; see
	// Profile. ProfileSDK3 implies LegacyRequest; ProfileSDK4 implies (and
	// needs) PerDevice and sets each device's user name itself.
	Profile Profile
	// Hosts maps a download host name to the "ip:port" that stands for
	// that host's default port (80 for http, 443 for https), like
	// /etc/hosts plus a NAT rule: the strict profiles always connect to the
	// default port, whatever the URL says. A host not in the map is dialed
	// for real. Ignored by the lenient profile, which uses HTTPClient.
	Hosts map[string]string
	// DownloadTLS verifies https download servers in the strict profiles;
	// default the system roots. The device's name for the server is the
	// URL's host.
	DownloadTLS *tls.Config
}

func (c *Config) setDefaults() {
	if c.NamePrefix == "" {
		c.NamePrefix = "dev-"
	}
	if len(c.Modules) == 0 {
		c.Modules = []Module{{Name: protocol.DefaultModule, Version: "1.0.0"}}
	}
	if c.Profile == "" {
		c.Profile = ProfileLenient
	}
	if c.Mode == "" {
		c.Mode = Multiplexed
		if c.Profile == ProfileSDK4 {
			c.Mode = PerDevice // one connection per device, known to the broker by its user name
		}
	}
	if c.Profile == ProfileSDK3 {
		c.LegacyRequest = true // 3.x asks on /ota/device/request
	}
	if c.Connections == 0 {
		c.Connections = (c.Devices + 2499) / 2500
	}
	if c.Mode == PerDevice {
		c.Connections = c.Devices
	}
	c.Connections = max(1, min(c.Connections, c.Devices))
	if c.ClientIDPrefix == "" {
		c.ClientIDPrefix = "devicesim-"
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = 3 * time.Second
	}
	if c.Failures.RevertAfter == 0 {
		c.Failures.RevertAfter = time.Second
	}
	if c.Failures.SlowDownloadDelay == 0 {
		c.Failures.SlowDownloadDelay = 30 * time.Second
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{
			Timeout:   10 * time.Minute,
			Transport: &http.Transport{MaxIdleConnsPerHost: 256, Proxy: http.ProxyFromEnvironment},
		}
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 30 * time.Second
	}
	if c.ConnectConcurrency == 0 {
		c.ConnectConcurrency = 64
	}
	if c.Logger.GetSink() == nil {
		c.Logger = logr.Discard()
	}
}

func (c *Config) validate() error {
	var errs []error
	if c.Broker == "" {
		errs = append(errs, errors.New("broker URL is required"))
	}
	if !protocol.ValidSegment(c.ProductKey) {
		errs = append(errs, fmt.Errorf("product key %q is not a valid topic segment", c.ProductKey))
	}
	if c.Devices < 1 {
		errs = append(errs, errors.New("at least one device"))
	}
	if !protocol.ValidSegment(c.deviceName(c.Devices - 1)) {
		errs = append(errs, fmt.Errorf("name prefix %q makes invalid device names", c.NamePrefix))
	}
	if c.Mode != PerDevice && c.Mode != Multiplexed {
		errs = append(errs, fmt.Errorf("unknown mode %q", c.Mode))
	}
	seen := map[string]bool{}
	for _, m := range c.Modules {
		if !protocol.ValidName(m.Name) || !protocol.ValidName(m.Version) || seen[m.Name] {
			errs = append(errs, fmt.Errorf("module %q/%q: names and versions must be 1..64 of [A-Za-z0-9._-], names unique", m.Name, m.Version))
		}
		seen[m.Name] = true
	}
	if err := c.validateProfile(); err != nil {
		errs = append(errs, err)
	}
	f := c.Failures
	for _, r := range []float64{f.DownloadFail, f.DigestMismatch, f.FlashFail, f.NeverFinish, f.GoOffline, f.SlowDownload, f.UpgradeFail, f.Revert} {
		if r < 0 || r > 1 {
			errs = append(errs, errors.New("failure rates must be within 0..1"))
			break
		}
	}
	if f.total() > 1+1e-9 {
		errs = append(errs, fmt.Errorf("failure rates sum to %.3f, more than 1", f.total()))
	}
	for name, p := range c.Plans {
		if !c.isDeviceName(name) {
			errs = append(errs, fmt.Errorf("plan for %q: no such device in this fleet", name))
		}
		if !knownPlans[p] {
			errs = append(errs, fmt.Errorf("plan %q for %q: unknown plan", p, name))
		}
	}
	return errors.Join(errs...)
}

// isDeviceName reports whether name is one of the fleet's device names.
func (c *Config) isDeviceName(name string) bool {
	idx, ok := strings.CutPrefix(name, c.NamePrefix)
	if !ok {
		return false
	}
	i, err := strconv.Atoi(idx)
	return err == nil && i >= 0 && i < c.Devices && c.deviceName(i) == name
}

// DeviceName is the name of device i, for lists of the fleet's devices.
func (c *Config) DeviceName(i int) string { return c.deviceName(i) }

// deviceName is the name of device i: prefix plus the index, zero-padded
// to at least six digits so that names sort in index order.
func (c *Config) deviceName(i int) string {
	width := max(6, len(strconv.Itoa(c.Devices-1)))
	s := strconv.Itoa(i)
	for len(s) < width {
		s = "0" + s
	}
	return c.NamePrefix + s
}

// Plan is what a device does with one upgrade attempt.
type Plan string

// Plans, in the order their rates are laid out on [0, 1). UpgradeFail and
// then Revert came last so that adding them moved no device's plan for a
// given seed.
const (
	PlanSucceed        Plan = "succeed"
	PlanDownloadFail   Plan = "download_fail"
	PlanDigestMismatch Plan = "digest_mismatch"
	PlanFlashFail      Plan = "flash_fail"
	PlanNeverFinish    Plan = "never_finish"
	PlanGoOffline      Plan = "go_offline"
	PlanSlowDownload   Plan = "slow_download"
	PlanUpgradeFail    Plan = "upgrade_fail"
	PlanRevert         Plan = "revert"
)

var knownPlans = map[Plan]bool{
	PlanSucceed: true, PlanDownloadFail: true, PlanDigestMismatch: true, PlanFlashFail: true,
	PlanNeverFinish: true, PlanGoOffline: true, PlanSlowDownload: true, PlanUpgradeFail: true, PlanRevert: true,
}

// plan maps a device's draw for an attempt onto the failure rates, unless
// Config.Plans fixes the device's plan.
func (c *Config) plan(name string, attempt int) Plan {
	if p, ok := c.Plans[name]; ok {
		return p
	}
	if !c.Failures.Transient {
		attempt = 0
	}
	x := draw(c.Seed, name, attempt)
	f := c.Failures
	for _, p := range []struct {
		rate float64
		plan Plan
	}{
		{f.DownloadFail, PlanDownloadFail}, {f.DigestMismatch, PlanDigestMismatch}, {f.FlashFail, PlanFlashFail},
		{f.NeverFinish, PlanNeverFinish}, {f.GoOffline, PlanGoOffline}, {f.SlowDownload, PlanSlowDownload},
		{f.UpgradeFail, PlanUpgradeFail}, {f.Revert, PlanRevert},
	} {
		if x < p.rate {
			return p.plan
		}
		x -= p.rate
	}
	return PlanSucceed
}

// draw returns a uniform number in [0, 1) from FNV-1a over (seed, name,
// attempt), finished with a splitmix64 round so that neighbouring names
// ("dev-000001", "dev-000002") land far apart.
func draw(seed int64, name string, attempt int) float64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	mix := func(b byte) { h = (h ^ uint64(b)) * prime }
	for i := 0; i < 8; i++ {
		mix(byte(uint64(seed) >> (8 * i)))
	}
	for i := 0; i < len(name); i++ {
		mix(name[i])
	}
	for i := 0; i < 4; i++ {
		mix(byte(uint32(attempt) >> (8 * i)))
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return float64(h>>11) / (1 << 53)
}
