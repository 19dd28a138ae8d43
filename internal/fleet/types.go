package fleet

import (
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// product is one product line and its device inventory.
type product struct {
	key       string
	namespace string
	name      string
	uid       types.UID
	devices   map[string]*device
	slices    []*deviceSlice
	// campaigns of this product, for dynamic selection and lookups.
	campaigns map[*campaign]struct{}
	nextSlice int
	// versions counts the devices by module and version.
	versions versionCounts
}

// device is one device of a product. Kept small: there are 10^5..10^6.
type device struct {
	name     string
	slice    *deviceSlice
	modules  []otav1.ModuleVersion
	lastSeen int64
	// task is the active task holding the device, if any.
	task *task
	// changedSeq is the durability sequence that writes the device's last
	// change that must be durable: a report that changes nothing (a
	// duplicate the broker delivers again after a reconnect) is
	// acknowledged only once that is written, or a crash would forget the
	// change and the broker would not deliver the report again.
	changedSeq uint64
}

func (d *device) version(module string) (string, bool) {
	for _, mv := range d.modules {
		if mv.Module == module {
			return mv.Version, true
		}
	}
	return "", false
}

// setVersion records a module version, keeps the product's counts, and
// reports whether it changed.
func (d *device) setVersion(pr *product, module, version string) bool {
	for i := range d.modules {
		if d.modules[i].Module == module {
			if d.modules[i].Version == version {
				return false
			}
			pr.versions.add(module, d.modules[i].Version, -1)
			d.modules[i].Version = strings.Clone(version)
			pr.versions.add(module, version, 1)
			return true
		}
	}
	d.modules = append(d.modules, otav1.ModuleVersion{Module: strings.Clone(module), Version: strings.Clone(version)})
	pr.versions.add(module, version, 1)
	return true
}

// deviceSlice is the in-memory side of one DeviceSlice object.
type deviceSlice struct {
	name    string
	product *product
	devices []*device
	created bool
	dirty   bool
	// slowDirty: only lock mirrors changed; written at most every
	// slowWriteInterval unless something else makes the slice dirty.
	slowDirty bool
	lastWrite time.Time
}

// upgradeSlice is the in-memory side of one UpgradeSlice object.
type upgradeSlice struct {
	name     string
	campaign *campaign
	tasks    []*task
	created  bool
	dirty    bool
	// slowDirty: only progress steps changed; written at most every
	// slowWriteInterval unless a state change makes the slice dirty.
	slowDirty bool
	lastWrite time.Time
}

// task is one device's task in one campaign.
type task struct {
	dev      *device
	c        *campaign
	slice    *upgradeSlice
	state    otav1.TaskState
	step     int32
	attempt  int32
	wave     int32
	from     string
	reason   string
	message  string
	updated  int64
	started  int64 // Unix milliseconds, like retryAt
	notified int64 // Unix milliseconds
	retryAt  int64
	// soakStart is when the device reported the target (Unix
	// milliseconds), for a campaign with a soak.
	soakStart int64
	// pushes of the current attempt the device has not answered.
	pushes int32
	// queued: the task is in its campaign's push queue.
	queued bool
	// unsure: found NOTIFIED at start-up, so maybe never pushed.
	unsure bool
	// reverted: counted in counts.reverted, not failed (FAILED, reason
	// Reverted); kept with the task so its counter is left right.
	reverted bool
}

func (t *task) record() otav1.DeviceTask {
	return otav1.DeviceTask{
		Device: t.dev.name, State: t.state, Step: t.step, Attempt: t.attempt,
		FromVersion: t.from, Reason: t.reason, Message: t.message, Wave: t.wave,
		Updated: t.updated, Started: t.started / 1000, RetryAt: t.retryAt / 1000, Pushes: t.pushes,
		SoakStart: t.soakStart / 1000,
	}
}
