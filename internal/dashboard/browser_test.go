package dashboard

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/lab"
)

const (
	browserNS   = "dash"
	fleetSize   = 40
	pageTimeout = 90 * time.Second
)

// TestDashboardInBrowser drives the dashboard in headless Chromium against a
// lab (real kube-apiserver, broker, MinIO, manager) while a simulated fleet
// takes a rollout: the batch page follows it to the simulator's final
// numbers, the chart and the device table render and search, the pause
// button pauses a batch on the server, and a read-only user sees the API
// server's refusal.
func TestDashboardInBrowser(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	tab := newBrowser(t, ctx) // first, so a missing Chromium fails at once
	l, err := lab.Start(ctx, lab.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Stop) // after the dashboards and the fleet, which clean up first
	fleet, testers := prepare(t, ctx, l)
	url := serve(t, ctx, l.ControlPlane.Config, browserNS)

	ub := &otav1.UpgradeBatch{ObjectMeta: lab.ObjectMeta(browserNS, "rollout"), Spec: otav1.UpgradeBatchSpec{
		Firmware: "plug-2.0.0", RatePerMinute: 6000,
		Waves: []otav1.Wave{{Percent: 30, SuccessThreshold: 50}, {Percent: 100}}}}
	if err := l.Client().Create(ctx, ub); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(tab, chromedp.Navigate(url+"#/batches/rollout"), chromedp.WaitVisible(chromedp.CSS("#phase .badge"))); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitBatch(ctx, ub, 2*time.Minute, lab.Finished, nil); err != nil {
		t.Fatalf("the rollout did not finish: %v (status %+v)", err, ub.Status)
	}
	s := fleet.Summary()
	failed := s.Outcomes[devicesim.OutcomeDownloadFailed]
	succeeded := s.Versions["default"]["2.0.0"] - len(testers) // the testers were upgraded by verification
	t.Logf("simulator: %d succeeded, %d failed; batch counts %+v", succeeded, failed, ub.Status.Counts)
	waitCounters(t, tab, succeeded, failed)
	checkDeviceTable(t, tab, fleet, succeeded+failed, failed)
	screenshot(t, tab, "batch")

	checkProductsAndFirmware(t, tab)
	held := checkPause(t, ctx, tab, l)
	checkRefusal(t, ctx, tab, l, held)
}

// prepare creates the product, a fleet of fleetSize plugs (10% failing
// their download), firmware 2.0.0 and a verification run on three plugs.
func prepare(t *testing.T, ctx context.Context, l *lab.Lab) (*devicesim.Fleet, []string) {
	t.Helper()
	prod := &otav1.Product{ObjectMeta: lab.ObjectMeta(browserNS, "plug"), Spec: otav1.ProductSpec{ProductKey: "dashplug", DisplayName: "Smart plug"}}
	if err := l.CreateProduct(ctx, prod); err != nil {
		t.Fatal(err)
	}
	fleet, err := devicesim.Start(ctx, l.FleetConfig(devicesim.Config{ProductKey: "dashplug", Devices: fleetSize,
		Mode: devicesim.Multiplexed, Failures: devicesim.Failures{DownloadFail: 0.1}, Seed: 7, ProgressInterval: 100 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fleet.Stop)
	if err := fleet.WaitInformed(ctx); err != nil {
		t.Fatal(err)
	}
	image := make([]byte, 64<<10)
	_, _ = rand.Read(image)
	fw := &otav1.Firmware{ObjectMeta: lab.ObjectMeta(browserNS, "plug-2.0.0"), Spec: otav1.FirmwareSpec{Product: "plug",
		Version: "2.0.0", SignMethod: otav1.SignMethodSHA256, Description: "Fixes the relay's power-on state"}}
	if err := l.PushFirmware(ctx, fw, image); err != nil {
		t.Fatalf("pushing firmware: %v", err)
	}
	var testers []string
	for _, n := range fleet.DeviceNames() {
		if fleet.Plan(n) == devicesim.PlanSucceed && len(testers) < 3 {
			testers = append(testers, n)
		}
	}
	vr := &otav1.VerificationRun{ObjectMeta: lab.ObjectMeta(browserNS, "verify"),
		Spec: otav1.VerificationRunSpec{Firmware: fw.Name, Devices: testers}}
	if err := l.Client().Create(ctx, vr); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitRun(ctx, vr, time.Minute); err != nil || vr.Status.Phase != otav1.RunSucceeded {
		t.Fatalf("verification: %v, status %+v", err, vr.Status)
	}
	return fleet, testers
}

func waitCounters(t *testing.T, tab context.Context, succeeded, failed int) {
	t.Helper()
	pred := fmt.Sprintf(`document.querySelector("#count-succeeded .n")?.textContent === %q &&
		document.querySelector("#count-failed .n")?.textContent === %q &&
		document.querySelector("#phase")?.textContent === "Completed"`, strconv.Itoa(succeeded), strconv.Itoa(failed))
	waitJS(t, tab, "the final counters", pred, `document.querySelector("#counters")?.innerText + " phase " + document.querySelector("#phase")?.textContent`, pageTimeout)
	waitJS(t, tab, "the failure reason", fmt.Sprintf(`!!document.querySelector('[data-reason=%q]')`, otav1.FailureDownload),
		`document.querySelector("#reasons")?.innerText`, pageTimeout)
}

// checkDeviceTable: all rows of the batch on one page, a search narrows
// them to one device, a state filter to the failed ones.
func checkDeviceTable(t *testing.T, tab context.Context, fleet *devicesim.Fleet, total, failed int) {
	t.Helper()
	rows := `document.querySelectorAll("#devices tbody tr").length`
	waitJS(t, tab, "the device table", fmt.Sprintf(`%s === %d`, rows, total), rows, pageTimeout)
	var name string
	for _, n := range fleet.DeviceNames() {
		if fleet.Plan(n) == devicesim.PlanSucceed {
			name = n // the last plan-succeed device: not a tester, so in the batch
		}
	}
	if err := chromedp.Do(tab, chromedp.SendKeys(chromedp.CSS("#search"), name)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, tab, "the search to leave one row", fmt.Sprintf(`%s === 1 && !!document.querySelector('#devices tr[data-device=%q]')`, rows, name),
		`document.querySelector("#devices tbody").innerText`, pageTimeout)
	// The box is cleared as a person's select-all and delete would: the
	// value, then the input event the page listens to.
	err := chromedp.Do(tab, chromedp.Evaluate[chromedp.Void](`(() => {
		const q = document.querySelector("#search"); q.value = ""; q.dispatchEvent(new Event("input"));
		const s = document.querySelector("#state"); s.value = "FAILED"; s.dispatchEvent(new Event("change")); })()`))
	if err != nil {
		t.Fatal(err)
	}
	waitJS(t, tab, "the FAILED filter", fmt.Sprintf(`%s === %d && document.querySelector("#matched").textContent.startsWith("%d of")`, rows, failed, failed),
		`document.querySelector("#matched").textContent`, pageTimeout)
}

// show moves the open page to another route: a navigation to the same URL
// with another fragment would load no new document, and chromedp would
// wait for a load that never comes.
func show(route string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf("location.hash = %q", route))
}

func checkProductsAndFirmware(t *testing.T, tab context.Context) {
	t.Helper()
	err := chromedp.Do(tab, show("#/products"), chromedp.WaitVisible(chromedp.CSS(`.product[data-product="plug"]`)))
	if err != nil {
		t.Fatal(err)
	}
	// The Product controller recounts versions as the inventory changes.
	waitJS(t, tab, "the version chart", `!!document.querySelector('.product svg.chart rect[data-version="2.0.0"]')`,
		`document.querySelector(".product")?.innerText`, pageTimeout)
	waitJS(t, tab, "the batch list", `!!document.querySelector('#batches a[href="#/batches/rollout"]')`,
		`document.querySelector("#batches")?.innerText`, pageTimeout)
	screenshot(t, tab, "products")
	err = chromedp.Do(tab, show("#/firmwares"), chromedp.WaitVisible(chromedp.CSS(`.firmware[data-firmware="plug-2.0.0"]`)))
	if err != nil {
		t.Fatal(err)
	}
	waitJS(t, tab, "digests and the verification run", `document.querySelector(".firmware .sha256").textContent.length > 70 &&
		document.querySelectorAll(".firmware .run tbody tr").length === 3`, `document.querySelector(".firmware")?.innerText`, pageTimeout)
	screenshot(t, tab, "firmware")
}

// checkPause pauses a scheduled batch with the page's button and checks
// spec.paused on the server.
func checkPause(t *testing.T, ctx context.Context, tab context.Context, l *lab.Lab) *otav1.UpgradeBatch {
	t.Helper()
	later := metav1.NewTime(time.Now().Add(time.Hour))
	held := &otav1.UpgradeBatch{ObjectMeta: lab.ObjectMeta(browserNS, "tonight"), Spec: otav1.UpgradeBatchSpec{
		Firmware: "plug-2.0.0", Schedule: &otav1.Schedule{Start: &later}}}
	if err := l.Client().Create(ctx, held); err != nil {
		t.Fatal(err)
	}
	err := chromedp.Do(tab, show("#/batches/tonight"),
		chromedp.WaitEnabled(chromedp.CSS(`button[data-action="pause"]`)), chromedp.Click(chromedp.CSS(`button[data-action="pause"]`)))
	if err != nil {
		t.Fatal(err)
	}
	waitJS(t, tab, "the pause to be acknowledged", `document.querySelector("#notice.ok")?.textContent.includes("paused")`,
		`document.querySelector("#notice")?.textContent`, pageTimeout)
	err = lab.Poll(ctx, 10*time.Second, func() (bool, error) {
		err := l.Client().Get(ctx, client.ObjectKeyFromObject(held), held)
		return held.Spec.Paused, err
	})
	if err != nil {
		t.Fatalf("spec.paused on the server: %v (spec %+v)", err, held.Spec)
	}
	return held
}

// checkRefusal opens a dashboard as a user bound to a read-only Role and
// clicks resume: the page must show the API server's 403.
func checkRefusal(t *testing.T, ctx context.Context, tab context.Context, l *lab.Lab, held *otav1.UpgradeBatch) {
	t.Helper()
	c := l.Client()
	role := &rbacv1.Role{ObjectMeta: lab.ObjectMeta(browserNS, "ota-viewer"), Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{otav1.GroupVersion.Group}, Verbs: []string{"get", "list", "watch"},
		Resources: []string{"products", "firmwares", "verificationruns", "upgradebatches", "upgradeslices"}}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: lab.ObjectMeta(browserNS, "viewer"),
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "viewer"}}}
	for _, o := range []client.Object{role, binding} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	cfg := rest.CopyConfig(l.ControlPlane.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "viewer"}
	url := serve(t, ctx, cfg, browserNS)
	err := chromedp.Do(tab, chromedp.Navigate(url+"#/batches/tonight"),
		chromedp.WaitEnabled(chromedp.CSS(`button[data-action="resume"]`)), chromedp.Click(chromedp.CSS(`button[data-action="resume"]`)))
	if err != nil {
		t.Fatal(err)
	}
	waitJS(t, tab, "the refusal", `(t => t.includes("403") && t.includes("forbidden"))(document.querySelector("#notice.error")?.textContent ?? "")`,
		`document.querySelector("#notice")?.textContent`, pageTimeout)
	t.Logf("the read-only user saw: %s", text(t, tab, "#notice"))
	if err := c.Get(ctx, client.ObjectKeyFromObject(held), held); err != nil || !held.Spec.Paused {
		t.Fatalf("the refused resume changed the batch: %v, spec %+v", err, held.Spec)
	}
}
