package appapi

import (
	"net/http"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/fleet"
	"github.com/otafleet/otafleet/internal/protocol"
)

// A device in its soak is SOAKING in progress items, upgraded for
// firmware/file/get, still listed as upgrading, and cannot be canceled:
// it already runs the new version.
func TestLiveSoakingDevice(t *testing.T) {
	v := newLiveEnv(t, map[string]behaviour{"mine": upgrades})
	_, err := v.eng.Upsert(fleet.Spec{
		Ref: batchRef, Namespace: v.ns, UID: types.UID("uid-" + v.ns), ProductKey: v.pk,
		Module: protocol.DefaultModule, Target: "2.0.0",
		Image:         fleet.Image{Bucket: "fw", Key: "b", Size: 100, MD5: "0123456789abcdef0123456789abcdef", SignMethod: otav1.SignMethodMD5},
		RatePerMinute: 10000, Timeout: time.Hour, Soak: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	alice := hmacToken(t, claims("alice", v.dev("mine")))
	if p := v.waitState(alice, "mine", otav1.TaskSoaking); p.CurrentVersion != "2.0.0" || p.Step != 100 {
		t.Fatalf("soaking %+v", p)
	}
	fw := decodeData[Items[FirmwareItem]](t, call(t, v.url, PathFirmwareGet, alice, nil).want(t, http.StatusOK))
	if len(fw.Items) != 1 || fw.Items[0].Status != StatusSucceeded || fw.Items[0].State != otav1.TaskSoaking {
		t.Fatalf("firmware/file/get while soaking %+v", fw)
	}
	if dl := decodeData[Items[ProgressItem]](t, call(t, v.url, PathDevicesList, alice, nil).want(t, http.StatusOK)); len(dl.Items) != 1 {
		t.Fatalf("devices/list while soaking %+v", dl)
	}
	call(t, v.url, PathCancel, alice, ref(v.dev("mine"))).want(t, http.StatusNotFound)
	if c := v.counts(); c.Soaking != 1 || c.Canceled != 0 {
		t.Fatalf("counts after the refused cancel %+v", c)
	}
}
