package devicesim_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/otafleet/otafleet/internal/devicesim"
	"github.com/otafleet/otafleet/internal/protocol"
)

// cutOnFailure closes a device's connection instead of taking its first
// failure report: the device gets no PUBACK, as when the broker stops.
type cutOnFailure struct {
	mochi.HookBase
	cut atomic.Int64
}

func (h *cutOnFailure) ID() string           { return "cut-on-failure" }
func (h *cutOnFailure) Provides(b byte) bool { return b == mochi.OnPublish }
func (h *cutOnFailure) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if strings.HasPrefix(pk.TopicName, "/ota/device/progress/") && strings.Contains(string(pk.Payload), `"-4"`) &&
		h.cut.CompareAndSwap(0, 1) {
		cl.Stop(errors.New("cut before the PUBACK (test)"))
		return pk, packets.ErrRejectPacket
	}
	return pk, nil
}

// A failure report the broker never acknowledged is sent again once the
// device is connected again: a broker restart does not erase it.
func TestUnacknowledgedReportIsSentAgain(t *testing.T) {
	b := startBroker(t)
	hook := &cutOnFailure{}
	if err := b.Server().AddHook(hook, nil); err != nil {
		t.Fatal(err)
	}
	be := newBackend(t, b.URL)
	ctx := testContext(t)
	u, _ := imageServer(t, 4<<10, protocol.SignSHA256)
	fleet, err := devicesim.Start(ctx, devicesim.Config{Broker: b.URL, ProductKey: pk, Devices: 1, ProgressInterval: time.Millisecond,
		Plans: map[string]devicesim.Plan{"dev-000000": devicesim.PlanFlashFail}})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Stop()
	if err := fleet.WaitInformed(ctx); err != nil {
		t.Fatal(err)
	}
	be.push("dev-000000", u)
	msgs := be.waitFor("the flash failure", func(m []protocol.Message) bool {
		for _, p := range of(m, protocol.KindProgress, "dev-000000") {
			if p.Step == protocol.StepFlashFailed {
				return true
			}
		}
		return false
	})
	if hook.cut.Load() != 1 {
		t.Fatalf("the broker never cut the first failure report; reports %s", steps(msgs))
	}
	if s := fleet.Summary(); s.PublishErrors == 0 {
		t.Fatalf("no publish error counted:\n%s", s)
	}
}
