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
// maxFailedPercent% of finished), once at least minFinished devices
// finished.
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
