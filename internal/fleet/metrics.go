package fleet

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// Collector exposes the counters of a process's engines to Prometheus: one
// engine for every product, or one per product the replica owns. It reads
// them at scrape time, so the hot paths pay nothing for metrics. The
// counters of engines that stopped (a product handed over) are kept, so
// that counters never go down.
type Collector struct {
	engines func() []*Engine
	mu      sync.Mutex
	retired sample
}

// NewCollector returns a collector for e; register it with
// controller-runtime's metrics registry.
func NewCollector(e *Engine) *Collector {
	return NewFleetCollector(func() []*Engine {
		if e == nil {
			return nil
		}
		return []*Engine{e}
	})
}

// NewFleetCollector returns a collector for the engines engines returns at
// each scrape.
func NewFleetCollector(engines func() []*Engine) *Collector { return &Collector{engines: engines} }

// Retire keeps the counters of an engine that stopped.
func (c *Collector) Retire(e *Engine) {
	s := gather(e)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.retired.addCounters(&s)
}

var (
	descDevices   = prometheus.NewDesc("otafleet_fleet_devices", "Devices in the inventory of all products.", nil, nil)
	descCampaigns = prometheus.NewDesc("otafleet_fleet_campaigns", "Campaigns the engine holds.", nil, nil)
	descTasks     = prometheus.NewDesc("otafleet_fleet_tasks", "Device tasks of all campaigns by state.", []string{"state"}, nil)
	descMessages  = prometheus.NewDesc("otafleet_fleet_messages_total", "Device messages applied, by kind.", []string{"kind"}, nil)
	descIgnored   = prometheus.NewDesc("otafleet_fleet_messages_ignored_total",
		"Device messages ignored: unknown product, or progress for no active task.", []string{"reason"}, nil)
	descPushes = prometheus.NewDesc("otafleet_fleet_pushes_total", "Upgrade pushes sent, and pushes that failed to publish.", []string{"result"}, nil)
	descWrites = prometheus.NewDesc("otafleet_fleet_slice_writes_total", "Slice writes to the API server.", []string{"result"}, nil)
	descDone   = prometheus.NewDesc("otafleet_fleet_upgrades_succeeded_total", "Device upgrades that succeeded.", nil, nil)
	// Batches by phase and failures by reason answer "did a rollout abort"
	// and "what fails" without a label per batch or per device.
	descBatches = prometheus.NewDesc("otafleet_fleet_batches", "UpgradeBatches the engine holds, by phase.", []string{"phase"}, nil)
	descFailed  = prometheus.NewDesc("otafleet_fleet_failed_tasks",
		"Devices in the failureReasons of all campaigns the engine holds, by reason.", []string{"reason"}, nil)
)

var batchPhases = []otav1.BatchPhase{otav1.BatchPlanned, otav1.BatchRunning, otav1.BatchPaused,
	otav1.BatchCompleted, otav1.BatchCanceled, otav1.BatchAborted}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDevices, descCampaigns, descTasks, descMessages, descIgnored, descPushes, descWrites, descDone,
		descBatches, descFailed, descEarlyKept, descEarlyEvicted, descLockHold} {
		ch <- d
	}
}

// sample is what one scrape reads of one engine, or of several summed.
type sample struct {
	stats              Stats
	devices, campaigns int
	tasks              otav1.TaskCounts
	phases             map[otav1.BatchPhase]int
	reasons            map[string]int64
	earlyKept          int
	earlyEvicted       int64
	holds              [holdBuckets]int64
	holdSum            time.Duration
}

func gather(e *Engine) sample {
	e.mu.Lock()
	defer e.unlock()
	s := sample{stats: e.stats, phases: map[otav1.BatchPhase]int{}, reasons: map[string]int64{},
		earlyKept: len(e.early.entries), earlyEvicted: e.early.evicted}
	s.devices, s.campaigns = e.sizes()
	now := e.now()
	for _, cp := range e.campaigns {
		addCounts(&s.tasks, cp.counts)
		if cp.hasSpec && cp.spec.Ref.Kind == otav1.KindUpgradeBatch {
			s.phases[phase(cp, now)]++
		}
		for r, rc := range cp.reasons {
			s.reasons[r] += rc.Count
		}
	}
	h := e.mu.holds.summary()
	s.holds, s.holdSum = h.Buckets, h.Total
	return s
}

// addCounters adds o's counters (not its gauges) to s.
func (s *sample) addCounters(o *sample) {
	st, os := &s.stats, &o.stats
	st.Informs += os.Informs
	st.Progress += os.Progress
	st.Requests += os.Requests
	st.Stale += os.Stale
	st.UnknownProduct += os.UnknownProduct
	st.Pushed += os.Pushed
	st.Repushed += os.Repushed
	st.PublishFailed += os.PublishFailed
	st.Succeeded += os.Succeeded
	st.Writes += os.Writes
	st.WriteErrors += os.WriteErrors
	st.InvalidRecords += os.InvalidRecords
	s.earlyEvicted += o.earlyEvicted
	for i := range s.holds {
		s.holds[i] += o.holds[i]
	}
	s.holdSum += o.holdSum
}

// add adds all of o to s.
func (s *sample) add(o *sample) {
	s.addCounters(o)
	s.devices += o.devices
	s.campaigns += o.campaigns
	addCounts(&s.tasks, o.tasks)
	s.earlyKept += o.earlyKept
	for p, n := range o.phases {
		s.phases[p] += n
	}
	for r, n := range o.reasons {
		s.reasons[r] += n
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	s := sample{phases: map[otav1.BatchPhase]int{}, reasons: map[string]int64{}}
	s.addCounters(&c.retired)
	c.mu.Unlock()
	for _, e := range c.engines() {
		es := gather(e)
		s.add(&es)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	count := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descEarlyKept, float64(s.earlyKept))
	count(descEarlyEvicted, s.earlyEvicted)
	ch <- holdMetric(s.holds, s.holdSum)
	gauge(descDevices, float64(s.devices))
	gauge(descCampaigns, float64(s.campaigns))
	for _, st := range []otav1.TaskState{otav1.TaskConfirm, otav1.TaskQueued, otav1.TaskNotified, otav1.TaskInProgress,
		otav1.TaskSoaking, otav1.TaskSucceeded, otav1.TaskFailed, otav1.TaskTimedOut, otav1.TaskCanceled} {
		gauge(descTasks, float64(*counter(&s.tasks, st)), string(st))
	}
	// Reverted tasks are FAILED with reason Reverted, counted apart from
	// the other failures as in a campaign's status.
	gauge(descTasks, float64(s.tasks.Reverted), "REVERTED")
	st := s.stats
	count(descMessages, st.Informs, "inform")
	count(descMessages, st.Progress, "progress")
	count(descMessages, st.Requests, "request")
	count(descIgnored, st.UnknownProduct, "unknown_product")
	count(descIgnored, st.Stale, "no_active_task")
	count(descPushes, st.Pushed, "sent")
	count(descPushes, st.PublishFailed, "failed")
	count(descWrites, st.Writes-st.WriteErrors, "ok")
	count(descWrites, st.WriteErrors, "error")
	count(descDone, st.Succeeded)
	for _, p := range batchPhases {
		gauge(descBatches, float64(s.phases[p]), string(p))
	}
	for r, n := range s.reasons {
		gauge(descFailed, float64(n), r)
	}
}

func addCounts(dst *otav1.TaskCounts, src otav1.TaskCounts) {
	dst.Total += src.Total
	dst.Confirm += src.Confirm
	dst.Queued += src.Queued
	dst.Notified += src.Notified
	dst.InProgress += src.InProgress
	dst.Succeeded += src.Succeeded
	dst.Failed += src.Failed
	dst.TimedOut += src.TimedOut
	dst.Canceled += src.Canceled
	dst.Soaking += src.Soaking
	dst.Reverted += src.Reverted
}
