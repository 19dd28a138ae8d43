package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// VerificationRunSpec tries a Firmware on a few named test devices.
// +kubebuilder:validation:XValidation:rule="self.firmware == oldSelf.firmware && self.devices == oldSelf.devices",message="firmware and devices are immutable"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.cancel) || !oldSelf.cancel || (has(self.cancel) && self.cancel)",message="a canceled run cannot be resumed"
type VerificationRunSpec struct {
	// firmware is the name of the Firmware in this namespace to verify.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Firmware string `json:"firmware"`

	// devices are the names of the test devices, 1 to 10 (3 to 5 are
	// recommended). Every one must succeed for the image to be verified.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=10
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9_.:@-]+$`
	Devices []string `json:"devices"`

	// sourceVersions, when set, are the module versions the devices must be
	// on; a device on another version fails.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=10
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9._-]+$`
	SourceVersions []string `json:"sourceVersions,omitempty"`

	// timeout is how long a device may take from its first progress report
	// to reporting the new version: 1m to 24h.
	// +optional
	// +kubebuilder:default="1h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=40
	// +kubebuilder:validation:XValidation:rule="self.matches('^[-+]?([0-9]{1,6}([.][0-9]{1,9})?(ns|us|ms|s|m|h)){1,4}$')",messageExpression="'timeout must be a duration such as 90s, 10m or 1h30m, not ' + self"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[-+]?([0-9]{1,6}([.][0-9]{1,9})?(ns|us|ms|s|m|h)){1,4}$') || (duration(self) >= duration('1m') && duration(self) <= duration('24h'))",messageExpression="'timeout must be between 1m and 24h, not ' + self"
	Timeout *metav1.Duration `json:"timeout,omitempty"`

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

	// maintenanceWindows, when set, are the only times the run pushes, as
	// an UpgradeBatch's (test devices on a shared bench, say).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	MaintenanceWindows []MaintenanceWindow `json:"maintenanceWindows,omitempty"`

	// cancel stops the run: tasks not finished are canceled.
	// +optional
	Cancel bool `json:"cancel,omitempty"`
}

// RunPhase is the phase of a VerificationRun.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;Failed;Canceled
type RunPhase string

// VerificationRun phases.
const (
	RunPending   RunPhase = "Pending"
	RunRunning   RunPhase = "Running"
	RunSucceeded RunPhase = "Succeeded"
	RunFailed    RunPhase = "Failed"
	RunCanceled  RunPhase = "Canceled"
)

// DeviceResult is one test device's task.
type DeviceResult struct {
	// name of the device.
	// +required
	// +kubebuilder:validation:MaxLength=64
	Name string `json:"name"`
	// state of its task.
	// +required
	State TaskState `json:"state"`
	// step is the last progress step reported.
	// +optional
	Step int32 `json:"step,omitempty"`
	// fromVersion is the module version before the upgrade.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	FromVersion string `json:"fromVersion,omitempty"`
	// reason is a failure code.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Reason string `json:"reason,omitempty"`
	// message is the device's description of a failure.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Message string `json:"message,omitempty"`
}

// VerificationRunStatus is the observed state of a run.
type VerificationRunStatus struct {
	// observedGeneration is the generation last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions: Ready when every device succeeded.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// phase: Pending, Running, Succeeded, Failed or Canceled.
	// +optional
	// +kubebuilder:validation:MaxLength=16
	Phase RunPhase `json:"phase,omitempty"`
	// counts of device tasks by state.
	// +optional
	Counts TaskCounts `json:"counts,omitempty"`
	// sha256 is the image this run pushed, recorded when it started; the
	// run vouches for this image only.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	SHA256 string `json:"sha256,omitempty"`
	// devices lists each test device's task.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=10
	Devices []DeviceResult `json:"devices,omitempty"`
	// window says whether a maintenance window is open, and when the
	// next one opens or the open one closes; unset without windows.
	// +optional
	Window *WindowStatus `json:"window,omitempty"`
	// startTime is when the run started.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// completionTime is when the run finished.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
}

// VerificationRun tries a Firmware on up to 10 test devices; when all
// succeed the Firmware is Verified.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=vr,categories=ota
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.status) || !has(oldSelf.status.phase) || !(oldSelf.status.phase in ['Succeeded', 'Failed', 'Canceled']) || (has(self.spec.sourceVersions) == has(oldSelf.spec.sourceVersions) && (!has(self.spec.sourceVersions) || self.spec.sourceVersions == oldSelf.spec.sourceVersions))",messageExpression="'spec.sourceVersions cannot change after the run finished (' + oldSelf.status.phase + '): it records what was verified; create a new VerificationRun'"
// +kubebuilder:printcolumn:name="Firmware",type=string,JSONPath=`.spec.firmware`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Succeeded",type=integer,JSONPath=`.status.counts.succeeded`
// +kubebuilder:printcolumn:name="Total",type=integer,JSONPath=`.status.counts.total`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.counts.failed`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type VerificationRun struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired run.
	// +required
	Spec VerificationRunSpec `json:"spec"`
	// status is the observed run.
	// +optional
	Status VerificationRunStatus `json:"status,omitempty"`
}

// VerificationRunList is a list of VerificationRuns.
// +kubebuilder:object:root=true
type VerificationRunList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VerificationRun `json:"items"`
}

func init() {
	register(&VerificationRun{}, &VerificationRunList{})
}
