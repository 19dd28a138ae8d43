package fleet

import (
	"github.com/prometheus/client_golang/prometheus"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// Collector exposes the engine's counters to Prometheus. It reads them at
// scrape time, so the hot paths pay nothing for metrics.
type Collector struct{ e *Engine }

// NewCollector returns a collector for e; register it with
// controller-runtime's metrics registry.
func NewCollector(e *Engine) *Collector { return &Collector{e: e} }

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

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	e := c.e
	e.mu.Lock()
	s := e.stats
	devices, campaigns := e.sizes()
	var tc otav1.TaskCounts
	phases, reasons := map[otav1.BatchPhase]int{}, map[string]int64{}
	now := e.now()
	for _, cp := range e.campaigns {
		addCounts(&tc, cp.counts)
		if cp.hasSpec && cp.spec.Ref.Kind == otav1.KindUpgradeBatch {
			phases[phase(cp, now)]++
		}
		for r, rc := range cp.reasons {
			reasons[r] += rc.Count
		}
	}
	early := e.collectEarly()
	e.unlock()
	for _, m := range early {
		ch <- m
	}
	ch <- e.mu.holds.metric()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	count := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descDevices, float64(devices))
	gauge(descCampaigns, float64(campaigns))
	for _, st := range []otav1.TaskState{otav1.TaskConfirm, otav1.TaskQueued, otav1.TaskNotified, otav1.TaskInProgress,
		otav1.TaskSoaking, otav1.TaskSucceeded, otav1.TaskFailed, otav1.TaskTimedOut, otav1.TaskCanceled} {
		gauge(descTasks, float64(*counter(&tc, st)), string(st))
	}
	// Reverted tasks are FAILED with reason Reverted, counted apart from
	// the other failures as in a campaign's status.
	gauge(descTasks, float64(tc.Reverted), "REVERTED")
	count(descMessages, s.Informs, "inform")
	count(descMessages, s.Progress, "progress")
	count(descMessages, s.Requests, "request")
	count(descIgnored, s.UnknownProduct, "unknown_product")
	count(descIgnored, s.Stale, "no_active_task")
	count(descPushes, s.Pushed, "sent")
	count(descPushes, s.PublishFailed, "failed")
	count(descWrites, s.Writes-s.WriteErrors, "ok")
	count(descWrites, s.WriteErrors, "error")
	count(descDone, s.Succeeded)
	for _, p := range batchPhases {
		gauge(descBatches, float64(phases[p]), string(p))
	}
	for r, n := range reasons {
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
