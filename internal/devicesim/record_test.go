package devicesim_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/protocol"
)

// TestRecordListsEveryAttempt pushes two images to every device, one after
// the other, and checks that each device's record lists both attempts with
// the outcome its plan drew, marks as flashed exactly the ones that
// succeeded, and that WriteRecord writes the same, a line per device.
func TestRecordListsEveryAttempt(t *testing.T) {
	b := startBroker(t)
	be := newBackend(t, b.URL)
	ctx := testContext(t)
	u2, _ := imageServer(t, 1<<10, protocol.SignMD5)
	u3 := u2
	u3.Version = "3.0.0"
	cfg := devicesim.Config{Broker: b.URL, ProductKey: pk, Devices: 40, Instant: true, Seed: 3,
		Failures: devicesim.Failures{DownloadFail: 0.3, FlashFail: 0.2, Transient: true}}
	fleet, err := devicesim.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Stop()
	if err := fleet.WaitInformed(ctx); err != nil {
		t.Fatal(err)
	}
	for i, u := range []protocol.Upgrade{u2, u3} {
		for _, dn := range fleet.DeviceNames() {
			be.push(dn, u)
		}
		if err := fleet.Wait(ctx, func(s devicesim.Summary) bool {
			return s.PushesReceived == int64(40*(i+1)) && s.Outcomes[devicesim.OutcomeUpgrading] == 0
		}); err != nil {
			t.Fatal(err)
		}
	}
	want := map[devicesim.Plan]devicesim.Outcome{devicesim.PlanSucceed: devicesim.OutcomeSucceeded,
		devicesim.PlanDownloadFail: devicesim.OutcomeDownloadFailed, devicesim.PlanFlashFail: devicesim.OutcomeFlashFailed}
	outcomes := map[devicesim.Outcome]int{}
	for _, dn := range fleet.DeviceNames() {
		st, _ := fleet.Device(dn)
		version := "1.0.0"
		for i, a := range st.History {
			o := want[fleet.PlanAt(dn, i)]
			outcomes[o]++
			if a.Module != protocol.DefaultModule || a.Version != []string{"2.0.0", "3.0.0"}[i] || a.Outcome != o ||
				a.Flashed != (o == devicesim.OutcomeSucceeded) {
				t.Errorf("%s attempt %d: %+v; its plan says %s", dn, i, a, o)
			}
			if a.Flashed {
				version = a.Version
			}
		}
		if len(st.History) != 2 || st.Attempts != 2 || st.Versions[protocol.DefaultModule] != version {
			t.Errorf("%s: %d attempts (%d in the history), on %s; want 2, on %s", dn, st.Attempts, len(st.History),
				st.Versions[protocol.DefaultModule], version)
		}
	}
	if len(outcomes) != 3 {
		t.Fatalf("80 attempts should have drawn every outcome, got %v", outcomes)
	}
	checkWrittenRecord(t, fleet)
}

// checkWrittenRecord: WriteRecord writes Device for every device, in order.
func checkWrittenRecord(t *testing.T, fleet *devicesim.Fleet) {
	t.Helper()
	fleet.Stop()
	var buf bytes.Buffer
	if err := fleet.WriteRecord(&buf); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&buf)
	names := fleet.DeviceNames()
	i := 0
	for ; sc.Scan(); i++ {
		var got devicesim.DeviceStatus
		if err := json.Unmarshal(sc.Bytes(), &got); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if want, _ := fleet.Device(names[i]); !reflect.DeepEqual(got, want) {
			t.Fatalf("line %d: %+v; the fleet says %+v", i+1, got, want)
		}
	}
	if i != len(names) {
		t.Fatalf("%d lines for %d devices", i, len(names))
	}
}
