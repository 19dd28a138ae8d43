package v1alpha1

// Condition types shared by the otafleet resources.
const (
	// ConditionReady is True when the resource has reached its goal: a
	// Firmware stored and checked, a Product owning its productKey, a
	// campaign finished successfully.
	ConditionReady = "Ready"
	// ConditionReconciling is True while the controller works towards the
	// goal and expects to make progress without help.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when the controller cannot make progress
	// without a change by a human; its message says what to change.
	ConditionStalled = "Stalled"
)

// Condition reasons shared by the otafleet resources.
const (
	ReasonSucceeded          = "Succeeded"
	ReasonProgressing        = "Progressing"
	ReasonInvalidSpec        = "InvalidSpec"
	ReasonStorageError       = "StorageError"
	ReasonWaitingForUpload   = "WaitingForUpload"
	ReasonDigestMismatch     = "DigestMismatch"
	ReasonSignatureInvalid   = "SignatureInvalid"
	ReasonInUse              = "InUse"
	ReasonDuplicateProduct   = "DuplicateProductKey"
	ReasonProductNotFound    = "ProductNotFound"
	ReasonFirmwareNotReady   = "FirmwareNotReady"
	ReasonFirmwareUnverified = "FirmwareNotVerified"
	ReasonScheduled          = "Scheduled"
	ReasonPaused             = "Paused"
	ReasonWavePaused         = "WavePaused"
	ReasonCanceled           = "Canceled"
	ReasonAborted            = "AbortThresholdExceeded"
	ReasonFailed             = "Failed"
	ReasonNothingSelected    = "NothingSelected"  // a finished batch selected no device
	ReasonNoDeviceUpgraded   = "NoDeviceUpgraded" // a finished batch upgraded none of its devices
	ReasonNonDefaultPort     = "DeviceEndpointNonDefaultPort"
	// ReasonUnknownDevices: a List scope names devices the product's
	// inventory does not hold (counted in status.unknownDevices).
	ReasonUnknownDevices = "UnknownDevices"
	// ReasonInconclusive: a VerificationRun whose devices were busy or
	// never tried the image; it neither verifies nor fails the image.
	ReasonInconclusive = "Inconclusive"
	// ReasonFirmwareReplaced: the Firmware a run was made for was deleted
	// (and maybe recreated with another image); the run does not go on.
	ReasonFirmwareReplaced = "FirmwareReplaced"
	// ReasonScheduleEnded: a batch ended by its schedule's end.
	ReasonScheduleEnded = "ScheduleEnded"
	// ReasonProductDeleted: the campaign's Product is being deleted, which
	// cancels the campaign.
	ReasonProductDeleted = "ProductDeleted"
	// ReasonOutsideWindow: the campaign has devices to push and waits for
	// its next maintenance window.
	ReasonOutsideWindow = "OutsideMaintenanceWindow"
	// ReasonSoaking: every device was pushed; the campaign waits for the
	// soak of those on the target version to end.
	ReasonSoaking = "Soaking"
	// ReasonObjectOutsideNamespace: an object source or device list names
	// storage outside the namespace's own prefix.
	ReasonObjectOutsideNamespace = "ObjectOutsideNamespace"
)

// DefaultModule is the module whose version is the whole device's firmware
// version; devices may omit it from their messages.
const DefaultModule = "default"

// TaskState is the state of one device's task in one campaign, as the
// protocol names it.
// +kubebuilder:validation:Enum=CONFIRM;QUEUED;NOTIFIED;IN_PROGRESS;SOAKING;SUCCEEDED;FAILED;TIMED_OUT;CANCELED
type TaskState string

// Device task states. CONFIRM, QUEUED, NOTIFIED, IN_PROGRESS and SOAKING
// are active: a device holds at most one active task across all campaigns
// and modules (a soaking device is watched, so no other campaign may flash
// it meanwhile).
const (
	TaskConfirm    TaskState = "CONFIRM"
	TaskQueued     TaskState = "QUEUED"
	TaskNotified   TaskState = "NOTIFIED"
	TaskInProgress TaskState = "IN_PROGRESS"
	TaskSucceeded  TaskState = "SUCCEEDED"
	TaskFailed     TaskState = "FAILED"
	TaskTimedOut   TaskState = "TIMED_OUT"
	TaskCanceled   TaskState = "CANCELED"
	// TaskSoaking: the device reported the target version and is watched
	// for the campaign's soak before it counts as SUCCEEDED. Not one of
	// the protocol's states: the app API shows it as upgraded.
	TaskSoaking TaskState = "SOAKING"
)

// Active reports whether a task in this state holds its device.
func (s TaskState) Active() bool {
	switch s {
	case TaskConfirm, TaskQueued, TaskNotified, TaskInProgress, TaskSoaking:
		return true
	}
	return false
}

// Started reports whether the device has been pushed for this task, so that
// another campaign may no longer overwrite it.
func (s TaskState) Started() bool {
	return s == TaskNotified || s == TaskInProgress || s == TaskSoaking
}

// Unsuccessful reports whether the task ended without the device
// upgrading, for a reason that counts in failureReasons.
func (s TaskState) Unsuccessful() bool {
	return s == TaskFailed || s == TaskTimedOut
}

// SignMethod names the digest devices check the image against.
// +kubebuilder:validation:Enum=Md5;Sha256
type SignMethod string

// Sign methods, spelled as the vendor's device SDK compares them.
const (
	SignMethodMD5    SignMethod = "Md5"
	SignMethodSHA256 SignMethod = "Sha256"
)

// TaskCounts counts a campaign's device tasks by state.
type TaskCounts struct {
	// total is the number of devices selected so far.
	// +optional
	Total int64 `json:"total,omitempty"`
	// confirm counts tasks waiting for the end user's confirmation.
	// +optional
	Confirm int64 `json:"confirm,omitempty"`
	// queued counts tasks waiting to be pushed.
	// +optional
	Queued int64 `json:"queued,omitempty"`
	// notified counts devices pushed that have not reported progress yet.
	// +optional
	Notified int64 `json:"notified,omitempty"`
	// inProgress counts devices that reported progress.
	// +optional
	InProgress int64 `json:"inProgress,omitempty"`
	// succeeded counts devices that reported the target version.
	// +optional
	Succeeded int64 `json:"succeeded,omitempty"`
	// failed counts devices that failed (any step code, busy, retries
	// exhausted).
	// +optional
	Failed int64 `json:"failed,omitempty"`
	// timedOut counts devices that did not finish within the timeout.
	// +optional
	TimedOut int64 `json:"timedOut,omitempty"`
	// canceled counts tasks canceled by an operator, the app or an abort.
	// +optional
	Canceled int64 `json:"canceled,omitempty"`
	// soaking counts devices on the target version whose soak has not
	// ended yet; they still hold their devices.
	// +optional
	Soaking int64 `json:"soaking,omitempty"`
	// reverted counts devices that reported another version during their
	// soak (task FAILED with reason Reverted); they are not in failed.
	// +optional
	Reverted int64 `json:"reverted,omitempty"`
}

// ReasonCount is how many devices failed for one reason.
type ReasonCount struct {
	// reason is a failure code such as DownloadFailed or Busy.
	// +required
	// +kubebuilder:validation:MaxLength=64
	Reason string `json:"reason"`
	// count is the number of devices that failed for this reason.
	// +required
	Count int64 `json:"count"`
	// example is the description one of those devices sent, if any.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Example string `json:"example,omitempty"`
}

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// name of the referent.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// SecretKeyReference names one key of a Secret in the same namespace.
type SecretKeyReference struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// key within the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}
