package dashboard

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"k8s.io/client-go/rest"
)

// chromiumPath finds headless Chromium: $CHROMIUM_BIN (what
// hack/ensure-chromium.sh prints) or Debian's chromium on PATH. A missing
// browser fails the test: a browser test that skips would pass unseen.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM_BIN"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("headless Chromium not found: run hack/ensure-chromium.sh (or apt-get install -y chromium), " +
		"or set CHROMIUM_BIN; `make test-env` installs it")
	return ""
}

// newBrowser starts headless Chromium for one test and returns a tab.
func newBrowser(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		// Tests run as root in CI, where Chromium's sandbox cannot start.
		chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return bctx
}

// serve starts a dashboard of ns as cfg's user on a free loopback port and
// returns its URL.
func serve(t *testing.T, ctx context.Context, cfg *rest.Config, ns string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	srv, err := Start(ctx, Options{Config: cfg, Namespace: ns})
	if err != nil {
		cancel()
		t.Fatalf("starting the dashboard: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dashboard: %v", err)
		}
	})
	return "http://" + ln.Addr().String() + "/"
}

// waitJS polls a JavaScript predicate in the page until it is true; on
// timeout the test fails with what explain evaluates to, so a failure says
// what the page showed.
func waitJS(t *testing.T, tab context.Context, what, predicate, explain string, timeout time.Duration) {
	t.Helper()
	_, err := chromedp.Run(tab, chromedp.Poll[bool](predicate,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
	if err != nil {
		shown, _ := chromedp.Run(tab, chromedp.Evaluate[string](explain))
		t.Fatalf("waiting for %s: %v; the page shows: %s", what, err, shown)
	}
}

// text returns the text of the first element matching sel.
func text(t *testing.T, tab context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(tab, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector(%q)?.textContent ?? "<missing>"`, sel)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// screenshot saves the page as name.png in $DASHBOARD_SCREENSHOTS, by
// default bin/dashboard-screenshots in the checkout (ignored by git).
func screenshot(t *testing.T, tab context.Context, name string) {
	t.Helper()
	dir := os.Getenv("DASHBOARD_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "bin", "dashboard-screenshots")
	}
	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}
