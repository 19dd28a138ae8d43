package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BatchType says whether a batch selects devices once or keeps selecting.
// +kubebuilder:validation:Enum=Static;Dynamic
type BatchType string

// Batch types.
const (
	// BatchStatic selects the matching devices once, when the batch starts.
	BatchStatic BatchType = "Static"
	// BatchDynamic also selects devices that appear later or later report
	// a source version, until the schedule's end or a cancel.
	BatchDynamic BatchType = "Dynamic"
)

// ScopeType says which devices of the product a batch targets.
// +kubebuilder:validation:Enum=All;List;Gray
type ScopeType string

// Scope types.
const (
	ScopeAll  ScopeType = "All"
	ScopeList ScopeType = "List"
	ScopeGray ScopeType = "Gray"
)

// UpgradeBatchSpec rolls a Firmware out to a product's devices.
// +kubebuilder:validation:XValidation:rule="self.firmware == oldSelf.firmware",message="firmware is immutable"
// +kubebuilder:validation:XValidation:rule="self.type == oldSelf.type",message="type is immutable"
// +kubebuilder:validation:XValidation:rule="self.scope == oldSelf.scope",message="scope is immutable"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.cancel) || has(self.cancel)",message="a canceled batch cannot be resumed"
// +kubebuilder:validation:XValidation:rule="!has(self.retry) || !has(self.retry.interval) || !has(self.timeout) || !self.retry.interval.matches('^[-+]?([0-9]{1,6}([.][0-9]{1,9})?(ns|us|ms|s|m|h)){1,4}$') || !self.timeout.matches('^[-+]?([0-9]{1,6}([.][0-9]{1,9})?(ns|us|ms|s|m|h)){1,4}$') || duration(self.retry.interval) < duration(self.timeout)",message="retry.interval must be shorter than timeout"
// +kubebuilder:validation:XValidation:rule="!has(self.schedule) || !has(self.schedule.start) || !has(self.schedule.end) || timestamp(self.schedule.end) > timestamp(self.schedule.start)",message="schedule.end must be after schedule.start"
type UpgradeBatchSpec struct {
	// firmware is the name of the Firmware in this namespace to roll out;
	// its product and module are the batch's.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Firmware string `json:"firmware"`

	// type is Static (select the matching devices once) or Dynamic (also
	// select devices that appear or report a source version later).
	// +optional
	// +kubebuilder:default=Static
	Type BatchType `json:"type,omitempty"`

	// scope says which devices are targeted: all, a list, or a gray
	// percentage.
	// +optional
	// +kubebuilder:default={type: All}
	Scope Scope `json:"scope,omitempty"`

	// sourceVersions, when set, limit the batch to devices whose module is
	// on one of these versions. Devices already on the target version are
	// never selected.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=10
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9._-]+$`
	SourceVersions []string `json:"sourceVersions,omitempty"`

	// ratePerMinute is the most upgrade messages pushed per minute,
	// 10 to 10000.
	// +optional
	// +kubebuilder:default=10000
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=10000
	RatePerMinute int32 `json:"ratePerMinute,omitempty"`

	// waves split the rollout: each wave pushes up to a cumulative
	// percentage of the selected devices, optionally pauses, and only
	// continues when enough of it succeeded. Without waves the whole
	// batch is one wave.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10
	// +kubebuilder:validation:XValidation:rule="self.size() < 2 || [1,2,3,4,5,6,7,8,9].filter(i, i < self.size()).all(i, self[i].percent > self[i-1].percent)",message="wave percentages must increase"
	Waves []Wave `json:"waves,omitempty"`

	// promotedWaves ends the pause after each wave whose number (1-based)
	// is at most this value; `kubectl ota promote` raises it.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	PromotedWaves int32 `json:"promotedWaves,omitempty"`

	// abort stops the batch when too many devices fail.
	// +optional
	Abort *AbortPolicy `json:"abort,omitempty"`

	// retry re-pushes failed devices.
	// +optional
	Retry *RetryPolicy `json:"retry,omitempty"`

	// timeout is how long a device may take from its first progress report
	// to reporting the new version: 1m to 24h.
	// +optional
	// +kubebuilder:default="1h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=40
	// +kubebuilder:validation:XValidation:rule="self.matches('^[-+]?([0-9]{1,6}([.][0-9]{1,9})?(ns|us|ms|s|m|h)){1,4}$')",messageExpression="'timeout must be a duration such as 90s, 10m or 1h30m, not ' + self"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[-+]?([0-9]{1,6}([.][0-9]{1,9})?(ns|us|ms|s|m|h)){1,4}$') || (duration(self) >= duration('1m') && duration(self) <= duration('24h'))",messageExpression="'timeout must be between 1m and 24h, not ' + self"
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// schedule delays the start and bounds the end of the batch.
	// +optional
	Schedule *Schedule `json:"schedule,omitempty"`

	// maintenanceWindows, when set, are the only times the batch pushes:
	// first pushes, re-pushes and retries wait for a window to open;
	// devices already pushed carry on when it closes. Any one open window
	// is enough.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	MaintenanceWindows []MaintenanceWindow `json:"maintenanceWindows,omitempty"`

	// soak is how long a device that reported the target version is
	// watched before it counts as succeeded: meanwhile it is Soaking, and
	// if it reports another version (it rolled back) it fails as
	// Reverted, for good in this batch. A wave's success threshold is
	// judged on devices whose soak ended. Unset or 0s: no soak. At most
	// 168h.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=40
	// +kubebuilder:validation:XValidation:rule="self.matches('^[-+]?([0-9]{1,6}([.][0-9]{1,9})?(ns|us|ms|s|m|h)){1,4}$')",messageExpression="'soak must be a duration such as 90s, 10m or 1h30m, not ' + self"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[-+]?([0-9]{1,6}([.][0-9]{1,9})?(ns|us|ms|s|m|h)){1,4}$') || (duration(self) >= duration('0s') && duration(self) <= duration('168h'))",messageExpression="'soak must be between 0s and 168h, not ' + self"
	Soak *metav1.Duration `json:"soak,omitempty"`

	// maxPushes is how many times a device is pushed the same attempt
	// without answering with any progress (it reconnected without having
	// taken the push, or stayed silent for the timeout) before its task
	// fails as NoResponse and this campaign pushes it no more: a device
	// that crashes on the push is not made to crash forever. 1 to 10.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10
	MaxPushes int32 `json:"maxPushes,omitempty"`

	// confirmationRequired makes each device wait until its user confirms
	// the upgrade in the mobile app.
	// +optional
	ConfirmationRequired bool `json:"confirmationRequired,omitempty"`

	// overwrite takes devices from other campaigns whose tasks have not
	// started (CONFIRM or QUEUED); without it such devices fail as Busy.
	// +optional
	Overwrite bool `json:"overwrite,omitempty"`

	// tags are passed to devices in the push's extData; keys are not empty
	// and do not start with "_", which marks the firmware's own entries.
	// +optional
	// +kubebuilder:validation:MaxProperties=10
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.size() <= 64 && self[k].size() <= 256)",message="tag keys are at most 64 and values at most 256 characters"
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.size() > 0)",message="tag keys must not be empty: devices cannot receive an extData entry without a name"
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.startsWith('_'))",message="tag keys starting with _ are reserved for the entries otafleet sets from the Firmware (_package_udi, _ed25519_signature): rename them"
	Tags map[string]string `json:"tags,omitempty"`

	// paused stops new pushes; devices already pushed carry on.
	// +optional
	Paused bool `json:"paused,omitempty"`

	// cancel, once set, stops the batch and cancels its tasks in the listed
	// states.
	// +optional
	Cancel *CancelPolicy `json:"cancel,omitempty"`
}

// Scope says which devices of the product a batch targets.
// +kubebuilder:validation:XValidation:rule="self.type == 'List' ? (has(self.devices) != has(self.devicesFrom)) : (!has(self.devices) && !has(self.devicesFrom))",message="a List scope needs exactly one of devices or devicesFrom, and only a List scope may have them"
// +kubebuilder:validation:XValidation:rule="self.type == 'Gray' ? has(self.grayPercent) : !has(self.grayPercent)",message="grayPercent is required for, and only allowed with, a Gray scope"
type Scope struct {
	// type is All, List or Gray.
	// +optional
	// +kubebuilder:default=All
	Type ScopeType `json:"type,omitempty"`

	// devices is an inline list of device names, for a List scope.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=1000
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9_.:@-]+$`
	Devices []string `json:"devices,omitempty"`

	// devicesFrom reads a list of up to 1,000,000 device names (one a
	// line) from a ConfigMap or an object, for a List scope.
	// +optional
	DevicesFrom *DeviceListSource `json:"devicesFrom,omitempty"`

	// grayPercent is the share of the product's matching devices to
	// target, 1 to 100, picked by a stable hash of the device name.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	GrayPercent int32 `json:"grayPercent,omitempty"`
}

// DeviceListSource is a list of device names stored elsewhere.
// +kubebuilder:validation:XValidation:rule="has(self.configMapRef) != has(self.object)",message="exactly one of configMapRef or object must be set"
type DeviceListSource struct {
	// configMapRef names a ConfigMap key holding device names, one a line.
	// +optional
	ConfigMapRef *ConfigMapKeyReference `json:"configMapRef,omitempty"`
	// object names an object in storage holding device names, one a line.
	// +optional
	Object *ObjectSource `json:"object,omitempty"`
}

// ConfigMapKeyReference names one key of a ConfigMap in the same namespace.
type ConfigMapKeyReference struct {
	// name of the ConfigMap.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// key within the ConfigMap.
	// +optional
	// +kubebuilder:default=devices
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key,omitempty"`
}

// BatchPhase is the phase of an UpgradeBatch.
// +kubebuilder:validation:Enum=Planned;Running;Paused;Completed;Canceled;Aborted
type BatchPhase string

// UpgradeBatch phases.
const (
	BatchPlanned   BatchPhase = "Planned"
	BatchRunning   BatchPhase = "Running"
	BatchPaused    BatchPhase = "Paused"
	BatchCompleted BatchPhase = "Completed"
	BatchCanceled  BatchPhase = "Canceled"
	BatchAborted   BatchPhase = "Aborted"
)

// UpgradeBatchStatus is the observed state of a batch.
type UpgradeBatchStatus struct {
	// observedGeneration is the generation last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions: Ready when completed; Stalled with the reason when the
	// batch cannot start (firmware not ready or not verified) or aborted.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// phase: Planned, Running, Paused, Completed, Canceled or Aborted.
	// +optional
	Phase BatchPhase `json:"phase,omitempty"`
	// counts of device tasks by state.
	// +optional
	Counts TaskCounts `json:"counts,omitempty"`
	// currentWave is the wave being pushed (1-based); 0 before the start.
	// +optional
	CurrentWave int32 `json:"currentWave,omitempty"`
	// waves is the number of waves.
	// +optional
	Waves int32 `json:"waves,omitempty"`
	// pausedUntil is when a timed wave pause ends.
	// +optional
	PausedUntil *metav1.Time `json:"pausedUntil,omitempty"`
	// waveGate says which gate holds the next wave and why, while one
	// does.
	// +optional
	WaveGate *WaveGateStatus `json:"waveGate,omitempty"`
	// window says whether a maintenance window is open, and when the
	// next one opens or the open one closes; unset without windows.
	// +optional
	Window *WindowStatus `json:"window,omitempty"`
	// failureReasons counts failed devices by reason, most common first.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	FailureReasons []ReasonCount `json:"failureReasons,omitempty"`
	// startTime is when the first device was pushed.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// completionTime is when the batch finished.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// selectionComplete is set once every device a static batch selected
	// is recorded in its slices; after a restart such a batch does not
	// select again.
	// +optional
	SelectionComplete bool `json:"selectionComplete,omitempty"`
	// unknownDevices counts devices a List scope names that the product's
	// inventory does not hold; they are not selected (condition reason
	// UnknownDevices).
	// +optional
	UnknownDevices int64 `json:"unknownDevices,omitempty"`
	// slices is the number of UpgradeSlices holding the device tasks.
	// +optional
	Slices int32 `json:"slices,omitempty"`
}

// UpgradeBatch rolls a verified Firmware out to a product's devices.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ub,categories=ota
// +kubebuilder:printcolumn:name="Firmware",type=string,JSONPath=`.spec.firmware`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Succeeded",type=integer,JSONPath=`.status.counts.succeeded`
// +kubebuilder:printcolumn:name="Total",type=integer,JSONPath=`.status.counts.total`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.counts.failed`
// +kubebuilder:printcolumn:name="Soaking",type=integer,JSONPath=`.status.counts.soaking`
// +kubebuilder:printcolumn:name="Reverted",type=integer,JSONPath=`.status.counts.reverted`
// +kubebuilder:printcolumn:name="Wave",type=integer,JSONPath=`.status.currentWave`
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`,priority=1
// +kubebuilder:printcolumn:name="In Progress",type=integer,JSONPath=`.status.counts.inProgress`,priority=1
// +kubebuilder:printcolumn:name="Queued",type=integer,JSONPath=`.status.counts.queued`,priority=1
// +kubebuilder:printcolumn:name="Timed Out",type=integer,JSONPath=`.status.counts.timedOut`,priority=1
// +kubebuilder:printcolumn:name="Next Window",type=string,JSONPath=`.status.window.nextOpen`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type UpgradeBatch struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired rollout.
	// +required
	Spec UpgradeBatchSpec `json:"spec"`
	// status is the observed rollout.
	// +optional
	Status UpgradeBatchStatus `json:"status,omitempty"`
}

// UpgradeBatchList is a list of UpgradeBatches.
// +kubebuilder:object:root=true
type UpgradeBatchList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []UpgradeBatch `json:"items"`
}

func init() {
	register(&UpgradeBatch{}, &UpgradeBatchList{})
}
