package v1alpha1

// CampaignKind names the two kinds of campaign the rollout engine runs.
// +kubebuilder:validation:Enum=VerificationRun;UpgradeBatch
type CampaignKind string

// Campaign kinds.
const (
	KindVerificationRun CampaignKind = "VerificationRun"
	KindUpgradeBatch    CampaignKind = "UpgradeBatch"
)

// CampaignReference names a campaign in the same namespace.
type CampaignReference struct {
	// kind of the campaign.
	// +required
	Kind CampaignKind `json:"kind"`
	// name of the campaign.
	// +required
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// String returns "Kind/name", the form used in failure reasons.
func (c CampaignReference) String() string { return string(c.Kind) + "/" + c.Name }

// Failure reasons recorded on device tasks and counted in campaign status.
const (
	FailureUpgrade      = "UpgradeFailed"      // step -1
	FailureDownload     = "DownloadFailed"     // step -2
	FailureVerification = "VerificationFailed" // step -3
	FailureFlash        = "FlashFailed"        // step -4
	FailureBusy         = "Busy"               // device held by another campaign
	FailureTimeout      = "Timeout"
	FailureWrongVersion = "WrongVersion" // device informed a version other than source or target
	FailureNoResponse   = "NoResponse"   // pushed maxPushes times without any progress
	// FailureReverted: the device reported the target, then another
	// version before its soak ended (it rolled back); counted in reverted,
	// not failed, and final for the campaign.
	FailureReverted = "Reverted"
)
