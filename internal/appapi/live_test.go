package appapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/protocol"
)

func TestLiveConfirmPushesAndSucceeds(t *testing.T) {
	v := newLiveEnv(t, map[string]behaviour{"mine": upgrades, "other": upgrades})
	v.campaign(true)
	alice := hmacToken(t, claims("alice", v.dev("mine")))

	fw := decodeData[Items[FirmwareItem]](t, call(t, v.url, PathFirmwareGet, alice, nil).want(t, http.StatusOK))
	if len(fw.Items) != 1 {
		t.Fatalf("pending upgrades %+v", fw)
	}
	if it := fw.Items[0]; it.DeviceName != "mine" || it.Status != StatusToBeUpgraded || !it.NeedConfirm ||
		it.CurrentVersion != "1.0.0" || it.TargetVersion != "2.0.0" || it.Module != "default" ||
		it.Size != 100 || it.SignMethod != "Md5" || it.Sign != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("pending upgrade %+v", it)
	}

	items := decodeData[Items[ConfirmItem]](t, call(t, v.url, PathConfirm, alice, refs(v.dev("mine"))).want(t, http.StatusOK))
	if len(items.Items) != 1 || items.Items[0].Code != http.StatusOK {
		t.Fatalf("confirm %+v", items)
	}
	p := v.waitState(alice, "mine", otav1.TaskSucceeded)
	if p.Step != 100 || p.CurrentVersion != "2.0.0" {
		t.Fatalf("after success %+v", p)
	}
	if v.sim.pushCount("mine") != 1 || v.sim.pushCount("other") != 0 {
		t.Fatalf("pushes: mine %d, other %d", v.sim.pushCount("mine"), v.sim.pushCount("other"))
	}
	if c := v.counts(); c.Succeeded != 1 || c.Confirm != 1 {
		t.Fatalf("counts %+v", c)
	}
	fw = decodeData[Items[FirmwareItem]](t, call(t, v.url, PathFirmwareGet, alice, nil).want(t, http.StatusOK))
	if len(fw.Items) != 1 || fw.Items[0].Status != StatusSucceeded || fw.Items[0].NeedConfirm {
		t.Fatalf("after success %+v", fw)
	}
	if dl := decodeData[Items[ProgressItem]](t, call(t, v.url, PathDevicesList, alice, nil).want(t, http.StatusOK)); len(dl.Items) != 0 {
		t.Fatalf("still upgrading %+v", dl)
	}
}

func TestLiveCancelStopsTheUpgrade(t *testing.T) {
	v := newLiveEnv(t, map[string]behaviour{"mine": holds})
	v.campaign(false)
	alice := hmacToken(t, claims("alice", v.dev("mine")))
	v.waitState(alice, "mine", otav1.TaskInProgress)
	dl := decodeData[Items[ProgressItem]](t, call(t, v.url, PathDevicesList, alice, nil).want(t, http.StatusOK))
	if len(dl.Items) != 1 || dl.Items[0].State != otav1.TaskInProgress {
		t.Fatalf("upgrading %+v", dl)
	}

	p := decodeData[ProgressItem](t, call(t, v.url, PathCancel, alice, ref(v.dev("mine"))).want(t, http.StatusOK))
	if p.State != otav1.TaskCanceled {
		t.Fatalf("after cancel %+v", p)
	}
	if c := v.counts(); c.Canceled != 1 || c.InProgress != 0 {
		t.Fatalf("counts %+v", c)
	}
	// The device finishing anyway does not revive the task.
	v.eng.HandleBatch(t.Context(), []protocol.Message{{Kind: protocol.KindInform, ProductKey: v.pk,
		DeviceName: "mine", Module: protocol.DefaultModule, Version: "2.0.0"}})
	if st := v.state("mine"); st != otav1.TaskCanceled {
		t.Fatalf("state %s after the device reported the target", st)
	}
	if dl := decodeData[Items[ProgressItem]](t, call(t, v.url, PathDevicesList, alice, nil).want(t, http.StatusOK)); len(dl.Items) != 0 {
		t.Fatalf("still upgrading %+v", dl)
	}
	call(t, v.url, PathCancel, alice, ref(v.dev("mine"))).want(t, http.StatusNotFound)
}

func TestLiveStreamDeliversProgressInOrder(t *testing.T) {
	v := newLiveEnv(t, map[string]behaviour{"mine": upgrades, "other": upgrades})
	v.campaign(true)
	alice := hmacToken(t, claims("alice", v.dev("mine")))
	s, resp := openStream(t, v.url, alice)
	if s == nil {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if snap := s.untilSynced(t); len(snap) != 1 || snap[0].State != otav1.TaskConfirm {
		t.Fatalf("snapshot %+v", snap)
	}
	// Another user's device upgrading first must not show on the stream.
	if err := v.eng.Confirm(v.pk, "other"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "other upgraded", func() bool { return v.state("other") == otav1.TaskSucceeded })
	call(t, v.url, PathConfirm, alice, refs(v.dev("mine"))).want(t, http.StatusOK)

	want := []struct {
		state otav1.TaskState
		step  int32
	}{
		{otav1.TaskQueued, 0}, {otav1.TaskNotified, 0}, {otav1.TaskInProgress, 0},
		{otav1.TaskInProgress, 100}, {otav1.TaskSucceeded, 100},
	}
	var last uint64
	for i, w := range want {
		ev, ok := s.next(t)
		if !ok {
			t.Fatal("the stream ended")
		}
		p := progressEvent(t, ev)
		id, err := strconv.ParseUint(ev.ID, 10, 64)
		if err != nil || id <= last {
			t.Fatalf("event %d: id %q after %d", i, ev.ID, last)
		}
		last = id
		if p.DeviceName != "mine" || p.State != w.state || p.Step != w.step {
			t.Fatalf("event %d: %s %s step %d, want %s step %d", i, p.DeviceName, p.State, p.Step, w.state, w.step)
		}
	}
}

func TestLiveRefusesBadTokens(t *testing.T) {
	v := newLiveEnv(t, map[string]behaviour{"mine": upgrades})
	v.campaign(true)
	valid := func() *Claims { return claims("alice", v.dev("mine")) }
	expired := valid()
	expired.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour))
	wrongAud := valid()
	wrongAud.Audience = jwt.ClaimStrings{"another-service"}
	unsigned, err := jwt.NewWithClaims(jwt.SigningMethodNone, valid()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{
		"expired":         hmacToken(t, expired),
		"unsigned":        unsigned,
		"wrongly signed":  sign(t, jwt.SigningMethodHS256, []byte("another-secret-of-at-least-32-bytes!"), valid()),
		"wrong audience":  hmacToken(t, wrongAud),
		"RSA, not shared": sign(t, jwt.SigningMethodRS256, testKeys().rsa, valid()),
	} {
		t.Run(name, func(t *testing.T) {
			call(t, v.url, PathConfirm, tok, refs(v.dev("mine"))).want(t, http.StatusUnauthorized)
			call(t, v.url, PathProgressGet, tok, ref(v.dev("mine"))).want(t, http.StatusUnauthorized)
			if s, resp := openStream(t, v.url, tok); s != nil || resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("stream opened: %d", resp.StatusCode)
			}
		})
	}
	if st := v.state("mine"); st != otav1.TaskConfirm || v.sim.pushCount("mine") != 0 {
		t.Fatalf("a refused token changed the device: %s, %d pushes", st, v.sim.pushCount("mine"))
	}
	// The same request with a good token works: the refusals were the tokens.
	call(t, v.url, PathConfirm, hmacToken(t, valid()), refs(v.dev("mine"))).want(t, http.StatusOK)
	if st := v.state("mine"); st == otav1.TaskConfirm {
		t.Fatal("a valid confirm did nothing")
	}
}

func TestLiveForeignAndReadOnlyDevices(t *testing.T) {
	v := newLiveEnv(t, map[string]behaviour{"mine": upgrades, "shared": upgrades, "other": upgrades})
	v.campaign(true)
	cl := claims("alice", v.dev("mine"))
	cl.Shared = v.devs("shared")
	alice := hmacToken(t, cl)

	call(t, v.url, PathConfirm, alice, refs(v.devs("mine", "other")...)).want(t, http.StatusForbidden)
	call(t, v.url, PathCancel, alice, ref(v.dev("other"))).want(t, http.StatusForbidden)
	call(t, v.url, PathProgressGet, alice, ref(v.dev("other"))).want(t, http.StatusForbidden)
	call(t, v.url, PathConfirm, alice, refs(v.devs("mine", "shared")...)).want(t, http.StatusForbidden)
	call(t, v.url, PathCancel, alice, ref(v.dev("shared"))).want(t, http.StatusForbidden)

	p := decodeData[ProgressItem](t, call(t, v.url, PathProgressGet, alice, ref(v.dev("shared"))).want(t, http.StatusOK))
	if !p.ReadOnly || p.State != otav1.TaskConfirm || p.TargetVersion != "2.0.0" {
		t.Fatalf("shared device %+v", p)
	}
	pl := decodeData[Items[ProgressItem]](t, call(t, v.url, PathProgressList, alice, nil).want(t, http.StatusOK))
	if len(pl.Items) != 2 || pl.Items[0].DeviceName != "mine" || pl.Items[1].DeviceName != "shared" {
		t.Fatalf("alice's progress %+v", pl)
	}
	for _, dn := range []string{"mine", "shared", "other"} {
		if st := v.state(dn); st != otav1.TaskConfirm || v.sim.pushCount(dn) != 0 {
			t.Fatalf("%s: %s after %d pushes", dn, st, v.sim.pushCount(dn))
		}
	}
	if c := v.counts(); c.Confirm != 3 {
		t.Fatalf("counts %+v", c)
	}
}

func TestLiveConfirmLimitAndBodySize(t *testing.T) {
	devices := map[string]behaviour{}
	var names []string
	for i := range 21 {
		dn := fmt.Sprintf("m%02d", i)
		devices[dn] = upgrades
		names = append(names, dn)
	}
	v := newLiveEnv(t, devices)
	v.campaign(true)
	alice := hmacToken(t, claims("alice", v.devs(names...)...))

	rep := call(t, v.url, PathConfirm, alice, refs(v.devs(names...)...)).want(t, http.StatusBadRequest)
	t.Logf("21 devices: %s", rep.Message)
	// A well-formed confirm of 20 devices, padded past 64 KiB.
	body, err := json.Marshal(refs(v.devs(names[:20]...)...))
	if err != nil {
		t.Fatal(err)
	}
	body = append(body, bytes.Repeat([]byte(" "), 64<<10)...)
	call(t, v.url, PathConfirm, alice, body).want(t, http.StatusRequestEntityTooLarge)
	if c := v.counts(); c.Confirm != 21 {
		t.Fatalf("a refused confirm changed devices: %+v", c)
	}

	call(t, v.url, PathConfirm, alice, refs(v.devs(names[:20]...)...)).want(t, http.StatusOK)
	eventually(t, "20 upgrades", func() bool { return v.counts().Succeeded == 20 })
	if c := v.counts(); c.Confirm != 1 || v.sim.pushCount(names[20]) != 0 {
		t.Fatalf("counts %+v", c)
	}
}
