package main

import (
	"crypto/rand"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"github.com/golang-jwt/jwt/v5"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/otafleet/otafleet/internal/appapi"
	"github.com/otafleet/otafleet/internal/lab"
	"github.com/otafleet/otafleet/internal/operator"
)

// The playground's app API takes tokens from this issuer for this
// audience; a real deployment takes them from the app backend.
const (
	appIssuer   = "otafleet-lab"
	appAudience = "otafleet"
	demoUser    = "demo-user"
)

// managerLog opens dir/manager.log and returns a logger writing to it at
// level (debug, info, error, or a number for more verbose V-levels), so the
// terminal stays for the rollout while rejected messages and reconciles
// stay readable in the file.
func managerLog(dir, level string) (logr.Logger, string, error) {
	path := filepath.Join(dir, "manager.log")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return logr.Discard(), "", err
	}
	// controller-runtime's zap options parse levels as the manager's
	// --zap-log-level does; binding them to a private flag set reuses
	// that parser instead of writing another.
	opts := zap.Options{DestWriter: f}
	fs := flag.NewFlagSet("zap", flag.ContinueOnError)
	opts.BindFlags(fs)
	if err := fs.Set("zap-log-level", level); err != nil {
		_ = f.Close()
		return logr.Discard(), "", fmt.Errorf("--log-level %q: %w", level, err)
	}
	return zap.New(zap.UseFlagOptions(&opts)), path, nil
}

// loopbackAddr returns want if it is free, else a free loopback port, so
// that a second playground or a busy port does not stop the first.
func loopbackAddr(want string) (string, error) {
	if want != "" && portFree(want) {
		return want, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String(), nil
}

// appAPIOptions generates this run's HMAC secret: a fresh one per run, so
// that a token printed by one playground never opens another.
func appAPIOptions(addr string) (operator.AppAPIOptions, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return operator.AppAPIOptions{}, err
	}
	return operator.AppAPIOptions{BindAddress: addr, Issuer: appIssuer, Audience: appAudience,
		Keys: appapi.Keys{HMACSecret: secret}}, nil
}

// demoToken signs a token for the demo user, bound to devices (each
// "productKey/deviceName"), as the vendor's app backend would.
func demoToken(o operator.AppAPIOptions, devices []string, now time.Time) (string, error) {
	claims := appapi.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: o.Issuer, Audience: jwt.ClaimStrings{o.Audience}, Subject: demoUser,
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(24 * time.Hour)),
		},
		Devices: devices,
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(o.Keys.HMACSecret)
}

// printAppAPI shows how to try the mobile-app side with curl; devices are
// device names of productKey.
func printAppAPI(o operator.AppAPIOptions, token, productKey string, devices []string) {
	base := "http://" + o.BindAddress
	say("App API on %s (docs/app-api.md); a token for %s, bound to %v, valid 24h:", base, demoUser, devices)
	fmt.Fprintf(os.Stderr, "    export TOKEN=%s\n", token)
	auth := `-H "Authorization: Bearer $TOKEN"`
	fmt.Fprintf(os.Stderr, "    curl -s %s -d '{}' %s%s\n", auth, base, appapi.PathFirmwareGet)
	fmt.Fprintf(os.Stderr, "    curl -s %s -d '{}' %s%s\n", auth, base, appapi.PathProgressList)
	fmt.Fprintf(os.Stderr, "    curl -s %s -d '{\"productKey\":\"%s\",\"deviceName\":\"%s\"}' %s%s\n",
		auth, productKey, devices[0], base, appapi.PathProgressGet)
	fmt.Fprintf(os.Stderr, "    curl -sN %s %s%s\n", auth, base, appapi.PathProgressStream)
}

// observe sends the manager's logs (and client-go's) to a file, serves its
// metrics on loopback, and turns the app API on unless --app-api=false.
func observe(c config, dir string, o *lab.Options) (logPath string, err error) {
	if o.Log, logPath, err = managerLog(dir, c.logLevel); err != nil {
		return "", err
	}
	klog.SetLogger(o.Log.WithName("client-go"))
	if o.MetricsAddr, err = loopbackAddr(c.metricsAddress); err != nil {
		return "", err
	}
	if !c.appAPI {
		return logPath, nil
	}
	addr, err := loopbackAddr(c.appAPIAddress)
	if err != nil {
		return "", err
	}
	o.AppAPI, err = appAPIOptions(addr)
	return logPath, err
}

// tryAppAPI mints the demo user's token for devices and prints how to use
// it.
func tryAppAPI(o operator.AppAPIOptions, devices []string) error {
	bound := make([]string, len(devices))
	for i, d := range devices {
		bound[i] = productKey + "/" + d
	}
	token, err := demoToken(o, bound, time.Now())
	if err != nil {
		return err
	}
	printAppAPI(o, token, productKey, devices)
	return nil
}
