package v1alpha1

// The policies of an UpgradeBatch's rollout: waves, abort, retry, schedule
// and cancel.

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Wave is one step of a rollout.
type Wave struct {
	// percent is the cumulative share of selected devices pushed once this
	// wave is done, 1 to 100.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Percent int32 `json:"percent"`
	// pause after the wave: for a duration, or, without one, until
	// promoted.
	// +optional
	Pause *WavePause `json:"pause,omitempty"`
	// successThreshold is the share (percent) of the wave's finished
	// devices that must have succeeded before the next wave starts.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	SuccessThreshold int32 `json:"successThreshold,omitempty"`
}

// WavePause holds a rollout after a wave.
type WavePause struct {
	// duration to wait, at least 1s; without it the pause lasts until
	// promoted.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=40
	// +kubebuilder:validation:XValidation:rule="self.matches('^[-+]?([0-9]{1,6}([.][0-9]{1,9})?(ns|us|ms|s|m|h)){1,4}$')",messageExpression="'pause.duration must be a duration such as 90s, 10m or 1h30m, not ' + self"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[-+]?([0-9]{1,6}([.][0-9]{1,9})?(ns|us|ms|s|m|h)){1,4}$') || (duration(self) >= duration('1s'))",messageExpression="'pause.duration must be at least 1s, not ' + self"
	Duration *metav1.Duration `json:"duration,omitempty"`
}

// AbortPolicy stops a batch when failed > max(maxFailed,
// maxFailedPercent% of finished), or reverted > maxRevertedPercent% of the
// devices whose soak ended, once at least minFinished devices finished.
type AbortPolicy struct {
	// maxFailed is the absolute number of failures tolerated.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxFailed int32 `json:"maxFailed,omitempty"`
	// maxFailedPercent is the share of finished devices allowed to fail.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	MaxFailedPercent int32 `json:"maxFailedPercent,omitempty"`
	// minFinished is how many devices must finish before the policy
	// applies.
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=0
	MinFinished int32 `json:"minFinished,omitempty"`
	// maxRevertedPercent is the share of the devices whose soak ended
	// (succeeded or reverted) allowed to revert; more aborts the batch.
	// Unset, reverts never abort; 0 aborts on the first revert. Applies
	// once minFinished devices finished, as maxFailedPercent does.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	MaxRevertedPercent *int32 `json:"maxRevertedPercent,omitempty"`
}

// RetryPolicy re-pushes devices that failed.
type RetryPolicy struct {
	// count is the number of retries per device, 0 to 5.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=5
	Count int32 `json:"count,omitempty"`
	// interval between a failure and the retry, at least 1s.
	// +optional
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=40
	// +kubebuilder:validation:XValidation:rule="self.matches('^[-+]?([0-9]{1,6}([.][0-9]{1,9})?(ns|us|ms|s|m|h)){1,4}$')",messageExpression="'retry.interval must be a duration such as 90s, 10m or 1h30m, not ' + self"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[-+]?([0-9]{1,6}([.][0-9]{1,9})?(ns|us|ms|s|m|h)){1,4}$') || (duration(self) >= duration('1s'))",messageExpression="'retry.interval must be at least 1s, not ' + self"
	Interval *metav1.Duration `json:"interval,omitempty"`
	// timedOut also retries devices that timed out.
	// +optional
	TimedOut bool `json:"timedOut,omitempty"`
}

// Schedule bounds a batch in time.
type Schedule struct {
	// start: no push before this time.
	// +optional
	Start *metav1.Time `json:"start,omitempty"`
	// end: no push after this time; unfinished tasks are canceled and a
	// dynamic batch stops selecting.
	// +optional
	End *metav1.Time `json:"end,omitempty"`
}

// CancelPolicy cancels a batch.
type CancelPolicy struct {
	// states of the tasks to cancel; all active states when empty. Tasks
	// in other states carry on, but nothing new is pushed.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=4
	// +kubebuilder:validation:XValidation:rule="self.all(s, s in ['CONFIRM', 'QUEUED', 'NOTIFIED', 'IN_PROGRESS'])",message="only active states (CONFIRM, QUEUED, NOTIFIED, IN_PROGRESS) can be canceled"
	States []TaskState `json:"states,omitempty"`
}

// MaintenanceWindow is a recurring span of time in which a campaign may
// push: pushes, re-pushes and retries wait for one; devices already pushed
// carry on outside it.
// +kubebuilder:validation:XValidation:rule="!self.schedule.contains('TZ=')",message="set the time zone in timeZone, not with CRON_TZ= or TZ= in schedule"
type MaintenanceWindow struct {
	// schedule is a cron expression for when each window opens: five
	// fields (minute hour day-of-month month day-of-week), optionally
	// preceded by a seconds field, or a descriptor such as @daily. It is
	// read in timeZone. The API server checks its shape; the controller
	// parses it and stalls the campaign (reason InvalidSpec) with the
	// parser's message when it does not read.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|[0-9A-Za-z*/,?-]+( [0-9A-Za-z*/,?-]+){4,5})$')",messageExpression="'schedule must be a cron expression of 5 fields (minute hour day-of-month month day-of-week), 6 with seconds first, or @hourly/@daily/@weekly/@monthly/@yearly, not ' + self"
	Schedule string `json:"schedule"`

	// duration is how long each window stays open, 10s to 168h.
	// +required
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=40
	// +kubebuilder:validation:XValidation:rule="self.matches('^[-+]?([0-9]{1,6}([.][0-9]{1,9})?(ns|us|ms|s|m|h)){1,4}$')",messageExpression="'duration must be a duration such as 90s, 10m or 1h30m, not ' + self"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[-+]?([0-9]{1,6}([.][0-9]{1,9})?(ns|us|ms|s|m|h)){1,4}$') || (duration(self) >= duration('10s') && duration(self) <= duration('168h'))",messageExpression="'duration must be between 10s and 168h, not ' + self"
	Duration metav1.Duration `json:"duration"`

	// timeZone is the IANA name of the zone schedule is read in, such as
	// Europe/Berlin; UTC by default. The controller stalls the campaign
	// (reason InvalidSpec) when the name is not a known zone.
	// +optional
	// +kubebuilder:default=UTC
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$`
	TimeZone string `json:"timeZone,omitempty"`
}

// WindowStatus says where a campaign stands against its maintenance
// windows.
type WindowStatus struct {
	// open is true while a window is open.
	// +required
	Open bool `json:"open"`
	// closesAt is when the open window closes.
	// +optional
	ClosesAt *metav1.Time `json:"closesAt,omitempty"`
	// nextOpen is when the next window opens, while none is open; unset
	// when no window will ever open again.
	// +optional
	NextOpen *metav1.Time `json:"nextOpen,omitempty"`
}

// WaveGateType names what holds the next wave.
// +kubebuilder:validation:Enum=Soak;SuccessThreshold;Pause
type WaveGateType string

// Wave gates, in the order they are checked once a wave has pushed all its
// devices.
const (
	// GateSoak: devices of the wave are still soaking.
	GateSoak WaveGateType = "Soak"
	// GateSuccessThreshold: too few of the wave's devices succeeded.
	GateSuccessThreshold WaveGateType = "SuccessThreshold"
	// GatePause: the wave's pause, timed or until promoted.
	GatePause WaveGateType = "Pause"
)

// WaveGateStatus says what holds the next wave and why.
type WaveGateStatus struct {
	// gate is Soak, SuccessThreshold or Pause.
	// +required
	Gate WaveGateType `json:"gate"`
	// wave is the wave (1-based) whose gate holds.
	// +required
	Wave int32 `json:"wave"`
	// message says why, with the numbers.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Message string `json:"message,omitempty"`
}
