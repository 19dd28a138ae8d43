package fleet

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCollectorReportsTasksAndWrites(t *testing.T) {
	v := newEnv(t)
	v.devices(upgrades, v1, names("d", 5)...)
	v.devices(failsDownload, v1, "bad")
	v.upsert(v.spec("b", "default", "2.0.0"))
	v.waitFor("b", "completion", completed)
	want := `
# HELP otafleet_fleet_tasks Device tasks of all campaigns by state.
# TYPE otafleet_fleet_tasks gauge
otafleet_fleet_tasks{state="CANCELED"} 0
otafleet_fleet_tasks{state="CONFIRM"} 0
otafleet_fleet_tasks{state="FAILED"} 1
otafleet_fleet_tasks{state="IN_PROGRESS"} 0
otafleet_fleet_tasks{state="NOTIFIED"} 0
otafleet_fleet_tasks{state="QUEUED"} 0
otafleet_fleet_tasks{state="SUCCEEDED"} 5
otafleet_fleet_tasks{state="TIMED_OUT"} 0
# HELP otafleet_fleet_devices Devices in the inventory of all products.
# TYPE otafleet_fleet_devices gauge
otafleet_fleet_devices 6
`
	if err := testutil.CollectAndCompare(NewCollector(v.e), strings.NewReader(want),
		"otafleet_fleet_tasks", "otafleet_fleet_devices"); err != nil {
		t.Fatal(err)
	}
}
