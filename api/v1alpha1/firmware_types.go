package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FirmwareSpec describes one image for one product, module and version.
// +kubebuilder:validation:XValidation:rule="self.product == oldSelf.product && self.module == oldSelf.module && self.version == oldSelf.version",message="product, module and version are immutable"
// +kubebuilder:validation:XValidation:rule="self.source == oldSelf.source",message="source is immutable: create a new Firmware for a new image"
// +kubebuilder:validation:XValidation:rule="!has(self.diff) || !self.diff || has(self.diffSourceVersion)",message="diffSourceVersion is required for a differential image"
// +kubebuilder:validation:XValidation:rule="!has(self.diffSourceVersion) || (has(self.diff) && self.diff)",message="diffSourceVersion is only allowed with diff: true"
type FirmwareSpec struct {
	// product is the name of the Product in this namespace the image is for.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Product string `json:"product"`

	// module is the OTA module the image is for; "default" is the whole
	// device's firmware.
	// +optional
	// +kubebuilder:default=default
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_.-]+$`
	Module string `json:"module,omitempty"`

	// version is the version devices report after installing the image: 1
	// to 64 characters from A-Z, a-z, 0-9, '.', '_' and '-'. It is the only
	// proof of a successful upgrade, so it must match the version compiled
	// into the image.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9._-]+$`
	Version string `json:"version"`

	// source says where the image comes from: exactly one of upload, url
	// or object.
	// +required
	Source FirmwareSource `json:"source"`

	// signMethod is the digest devices check the image against: Md5 or
	// Sha256. The operator computes both; this picks the one sent as sign.
	// +optional
	// +kubebuilder:default=Md5
	// +kubebuilder:validation:MaxLength=16
	SignMethod SignMethod `json:"signMethod,omitempty"`

	// diff marks a differential image, which only applies to devices on
	// diffSourceVersion.
	// +optional
	Diff bool `json:"diff,omitempty"`

	// diffSourceVersion is the version a differential image applies to.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9._-]+$`
	DiffSourceVersion string `json:"diffSourceVersion,omitempty"`

	// description is shown to end users in the mobile app.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Description string `json:"description,omitempty"`

	// packageData is free text passed to devices in extData._package_udi.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	PackageData string `json:"packageData,omitempty"`

	// verificationRequired makes UpgradeBatches wait until a
	// VerificationRun has verified this image on test devices.
	// +optional
	// +kubebuilder:default=true
	VerificationRequired *bool `json:"verificationRequired,omitempty"`

	// signature, when set, is an Ed25519 signature of the image checked
	// before the Firmware becomes Ready, and passed to devices in extData.
	// +optional
	Signature *FirmwareSignature `json:"signature,omitempty"`
}

// FirmwareSource is where an image comes from. Exactly one field is set.
// +kubebuilder:validation:XValidation:rule="[has(self.upload), has(self.url), has(self.object)].filter(x, x).size() == 1",message="exactly one of upload, url or object must be set"
type FirmwareSource struct {
	// upload: the operator publishes a short-lived pre-signed PUT URL in
	// status.upload; `kubectl ota firmware push` uploads through it.
	// +optional
	Upload *UploadSource `json:"upload,omitempty"`
	// url: the operator downloads the image and stores it, refusing it
	// when its SHA-256 differs from sha256.
	// +optional
	URL *URLSource `json:"url,omitempty"`
	// object: the image already is in object storage.
	// +optional
	Object *ObjectSource `json:"object,omitempty"`
}

// UploadSource asks for an upload through a pre-signed URL.
type UploadSource struct {
	// sha256, when set, is the digest the uploaded image must have.
	// +optional
	// +kubebuilder:validation:Pattern=`^[a-f0-9]{64}$`
	SHA256 string `json:"sha256,omitempty"`
}

// URLSource is an image the operator fetches over HTTP(S).
type URLSource struct {
	// url to fetch the image from.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://`
	URL string `json:"url"`
	// sha256 is the image's lower-case hex SHA-256; a mismatch is refused.
	// +required
	// +kubebuilder:validation:Pattern=`^[a-f0-9]{64}$`
	SHA256 string `json:"sha256"`
	// size in bytes, when known; a mismatch is refused.
	// +optional
	// +kubebuilder:validation:Minimum=1
	Size int64 `json:"size,omitempty"`
}

// ObjectSource is an image already in object storage.
type ObjectSource struct {
	// bucket holding the object; the operator's bucket when empty.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Bucket string `json:"bucket,omitempty"`
	// key of the object.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Key string `json:"key"`
	// sha256, when set, is the digest the object must have.
	// +optional
	// +kubebuilder:validation:Pattern=`^[a-f0-9]{64}$`
	SHA256 string `json:"sha256,omitempty"`
}

// FirmwareSignature is an Ed25519 signature of the image.
type FirmwareSignature struct {
	// value is the base64-encoded Ed25519 signature of the image's SHA-256
	// digest (the 32 raw bytes), so that devices can check it while
	// streaming the image; it reaches devices as extData._ed25519_signature.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Value string `json:"value"`
	// publicKeyRef names the Secret key holding the PEM or raw base64
	// Ed25519 public key.
	// +required
	PublicKeyRef SecretKeyReference `json:"publicKeyRef"`
}

// VerificationState is how far test devices have verified an image.
// +kubebuilder:validation:Enum=Unverified;Verifying;Verified;Failed
type VerificationState string

// Verification states.
const (
	VerificationUnverified VerificationState = "Unverified"
	VerificationVerifying  VerificationState = "Verifying"
	VerificationVerified   VerificationState = "Verified"
	VerificationFailed     VerificationState = "Failed"
)

// Artifact is the stored image.
type Artifact struct {
	// bucket holding the image.
	// +required
	// +kubebuilder:validation:MaxLength=63
	Bucket string `json:"bucket"`
	// key of the image in the bucket.
	// +required
	// +kubebuilder:validation:MaxLength=1024
	Key string `json:"key"`
	// size in bytes.
	// +required
	Size int64 `json:"size"`
	// md5 is the lower-case hex MD5 computed by the operator.
	// +required
	// +kubebuilder:validation:MaxLength=32
	MD5 string `json:"md5"`
	// sha256 is the lower-case hex SHA-256 computed by the operator.
	// +required
	// +kubebuilder:validation:MaxLength=64
	SHA256 string `json:"sha256"`
}

// UploadStatus is where to upload an image for an upload source.
type UploadStatus struct {
	// url is a pre-signed PUT URL, valid until expiresAt.
	// +required
	// +kubebuilder:validation:MaxLength=4096
	URL string `json:"url"`
	// expiresAt is when the URL stops working; the controller publishes a
	// new one after that while no image has arrived.
	// +required
	ExpiresAt metav1.Time `json:"expiresAt"`
}

// Verification is the verification state of an image.
type Verification struct {
	// state: Unverified, Verifying, Verified or Failed; Unverified until a
	// VerificationRun starts.
	// +optional
	// +kubebuilder:default=Unverified
	// +kubebuilder:validation:MaxLength=16
	State VerificationState `json:"state,omitempty"`
	// run is the VerificationRun that set the state.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Run string `json:"run,omitempty"`
	// sha256 is the image the state is about; a Verified state whose
	// sha256 differs from status.artifact.sha256 does not count.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	SHA256 string `json:"sha256,omitempty"`
	// firmwareUID is the UID of the Firmware the state is about, so that
	// a Firmware recreated under the same name starts Unverified.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	FirmwareUID string `json:"firmwareUID,omitempty"`
	// message explains a failure.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
	// time the state was set.
	// +optional
	Time *metav1.Time `json:"time,omitempty"`
}

// FirmwareUsage says how the image is used.
type FirmwareUsage struct {
	// campaigns is the number of VerificationRuns and UpgradeBatches that
	// reference the image.
	// +optional
	Campaigns int32 `json:"campaigns,omitempty"`
	// activeCampaigns is the number of those not finished yet; deletion
	// waits until it is zero.
	// +optional
	ActiveCampaigns int32 `json:"activeCampaigns,omitempty"`
	// devices is the number of devices reporting this module version.
	// +optional
	Devices int64 `json:"devices,omitempty"`
}

// FirmwareStatus is the observed state of an image.
type FirmwareStatus struct {
	// observedGeneration is the generation last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions: Ready when the image is stored, its digests computed and
	// its signature (if any) checked.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// productKey of the Product, copied for devices and selectors.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	ProductKey string `json:"productKey,omitempty"`
	// artifact is the stored image.
	// +optional
	Artifact *Artifact `json:"artifact,omitempty"`
	// upload is where to upload the image while an upload is awaited.
	// +optional
	Upload *UploadStatus `json:"upload,omitempty"`
	// verification is computed by the Firmware controller from the
	// VerificationRuns the Firmware owns (see docs/spec).
	// +optional
	// +kubebuilder:default={}
	Verification Verification `json:"verification,omitempty"`
	// usage counts campaigns and devices.
	// +optional
	Usage FirmwareUsage `json:"usage,omitempty"`
}

// Firmware is one image for one product, module and version.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=fw,categories=ota
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.status) || !has(oldSelf.status.verification) || !has(oldSelf.status.verification.state) || !(oldSelf.status.verification.state in ['Verifying', 'Verified']) || !has(self.spec.signMethod) || !has(oldSelf.spec.signMethod) || self.spec.signMethod == oldSelf.spec.signMethod",messageExpression="'spec.signMethod cannot change once the image is ' + oldSelf.status.verification.state + ': devices were tested with its sign; create a new Firmware'"
// +kubebuilder:printcolumn:name="Product",type=string,JSONPath=`.spec.product`
// +kubebuilder:printcolumn:name="Module",type=string,JSONPath=`.spec.module`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.spec.version`
// +kubebuilder:printcolumn:name="Size",type=integer,JSONPath=`.status.artifact.size`
// +kubebuilder:printcolumn:name="Verification",type=string,JSONPath=`.status.verification.state`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Sign",type=string,JSONPath=`.spec.signMethod`,priority=1
// +kubebuilder:printcolumn:name="SHA256",type=string,JSONPath=`.status.artifact.sha256`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Firmware struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired image.
	// +required
	Spec FirmwareSpec `json:"spec"`
	// status is the stored image and its verification. Defaulted so that
	// the Verification column reads Unverified from the start.
	// +optional
	// +kubebuilder:default={}
	Status FirmwareStatus `json:"status,omitempty"`
}

// NeedsVerification reports whether batches must wait for a verification.
func (f *Firmware) NeedsVerification() bool {
	return f.Spec.VerificationRequired == nil || *f.Spec.VerificationRequired
}

// FirmwareList is a list of Firmwares.
// +kubebuilder:object:root=true
type FirmwareList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Firmware `json:"items"`
}

func init() {
	register(&Firmware{}, &FirmwareList{})
}
