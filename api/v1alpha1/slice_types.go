package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Labels the rollout engine puts on slices so they can be listed per product
// and per campaign without reading them all.
const (
	LabelProductKey = "ota.otafleet.dev/product-key"
	LabelCampaign   = "ota.otafleet.dev/campaign"
	LabelKind       = "ota.otafleet.dev/campaign-kind"
)

// MaxDevicesPerSlice bounds the entries of one slice, as EndpointSlice does:
// small enough that a patch stays cheap, large enough that 10^6 devices need
// only 10^4 objects.
const MaxDevicesPerSlice = 100

// ModuleVersion is the version a device reports for one module.
type ModuleVersion struct {
	// module name; "default" is the whole device's firmware.
	// +required
	Module string `json:"m"`
	// version reported.
	// +required
	Version string `json:"v"`
}

// DeviceLock records the active task that holds a device.
type DeviceLock struct {
	// campaign holding the device, as "Kind/name".
	// +required
	Campaign string `json:"c"`
	// module being upgraded.
	// +required
	Module string `json:"m"`
	// state of the task.
	// +required
	State TaskState `json:"s"`
}

// DeviceRecord is one device of the inventory. Field names are short on
// purpose: a million of these are stored.
type DeviceRecord struct {
	// name is the device name.
	// +required
	Name string `json:"n"`
	// modules are the versions last reported, one per module.
	// +optional
	Modules []ModuleVersion `json:"mv,omitempty"`
	// lastSeen is when the device last reported, in Unix seconds.
	// +optional
	LastSeen int64 `json:"ls,omitempty"`
	// lock is the active task holding the device, if any.
	// +optional
	Lock *DeviceLock `json:"lock,omitempty"`
	// Invalid says why the record's line did not read; not stored.
	Invalid string `json:"-"`
}

// DeviceSlice is one shard of a product's device inventory: up to
// MaxDevicesPerSlice devices with their module versions and the task that
// holds each. Written only by the rollout engine; owned by the Product.
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=dslice,categories=ota-slices
// +kubebuilder:printcolumn:name="Product Key",type=string,JSONPath=`.productKey`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type DeviceSlice struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// productKey of the devices.
	// +required
	ProductKey string `json:"productKey"`
	// devices in this shard, one line each (see DeviceList).
	// +optional
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=262144
	Devices DeviceList `json:"devices,omitempty"`
}

// DeviceSliceList is a list of DeviceSlices.
// +kubebuilder:object:root=true
type DeviceSliceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DeviceSlice `json:"items"`
}

// DeviceTask is one device's task in one campaign. Times are Unix seconds.
type DeviceTask struct {
	// device name.
	// +required
	Device string `json:"d"`
	// state of the task.
	// +required
	State TaskState `json:"s"`
	// step is the last progress step reported.
	// +optional
	Step int32 `json:"p,omitempty"`
	// attempt counts pushes (1 for the first).
	// +optional
	Attempt int32 `json:"a,omitempty"`
	// fromVersion is the module version when the device was selected.
	// +optional
	FromVersion string `json:"fv,omitempty"`
	// reason is a failure code.
	// +optional
	Reason string `json:"r,omitempty"`
	// message is the device's description of a failure, or the holder of
	// a busy device.
	// +optional
	Message string `json:"msg,omitempty"`
	// wave is the wave (1-based) the device belongs to.
	// +optional
	Wave int32 `json:"w,omitempty"`
	// updated is when the state last changed.
	// +optional
	Updated int64 `json:"u,omitempty"`
	// started is when the first progress report arrived; the timeout
	// counts from here.
	// +optional
	Started int64 `json:"st,omitempty"`
	// retryAt is when a failed device is pushed again.
	// +optional
	RetryAt int64 `json:"ra,omitempty"`
	// pushes counts the pushes of the current attempt that the device has
	// not answered with any progress: re-pushes after a reconnect or a
	// silence. At the campaign's maxPushes the task fails as NoResponse.
	// +optional
	Pushes int32 `json:"n,omitempty"`
	// soakStart is when the device first reported the target version, for
	// a campaign with a soak: the soak ends soak later, also across a
	// restart of the operator.
	// +optional
	SoakStart int64 `json:"sk,omitempty"`
	// Invalid says why the task's line did not read; not stored.
	Invalid string `json:"-"`
}

// UpgradeSlice is one shard of a campaign's device tasks: the durable record
// of what happened to each device. Written only by the rollout engine; owned
// by the campaign.
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=uslice,categories=ota-slices
// +kubebuilder:printcolumn:name="Campaign",type=string,JSONPath=`.campaign.name`
// +kubebuilder:printcolumn:name="Module",type=string,JSONPath=`.module`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type UpgradeSlice struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// campaign the tasks belong to.
	// +required
	Campaign CampaignReference `json:"campaign"`
	// productKey of the devices.
	// +required
	ProductKey string `json:"productKey"`
	// module being upgraded.
	// +required
	Module string `json:"module"`
	// tasks in this shard, one line each (see TaskList).
	// +optional
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=262144
	Tasks TaskList `json:"tasks,omitempty"`
}

// UpgradeSliceList is a list of UpgradeSlices.
// +kubebuilder:object:root=true
type UpgradeSliceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []UpgradeSlice `json:"items"`
}

func init() {
	register(&DeviceSlice{}, &DeviceSliceList{}, &UpgradeSlice{}, &UpgradeSliceList{})
}
