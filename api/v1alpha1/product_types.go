package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ProductSpec describes a product line.
// +kubebuilder:validation:XValidation:rule="self.productKey == oldSelf.productKey",message="productKey is immutable"
type ProductSpec struct {
	// productKey is the key devices of this product use in their MQTT
	// topics. One Product in the cluster owns a productKey.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]+$`
	ProductKey string `json:"productKey"`

	// displayName is a human-readable name of the product.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	DisplayName string `json:"displayName,omitempty"`

	// modules lists the OTA modules devices of this product have, for
	// example wifi and mcu. The module "default" stands for the whole
	// device's firmware and is always allowed.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9_.-]+$`
	Modules []string `json:"modules,omitempty"`
}

// VersionCount is how many devices run one version of a module.
type VersionCount struct {
	// version of the module.
	// +required
	// +kubebuilder:validation:MaxLength=64
	Version string `json:"version"`
	// devices running it.
	// +required
	Devices int64 `json:"devices"`
}

// ModuleVersions is the version distribution of one module.
type ModuleVersions struct {
	// module name.
	// +required
	// +kubebuilder:validation:MaxLength=64
	Module string `json:"module"`
	// versions, most common first; at most 20, the rest summed as "other".
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=21
	Versions []VersionCount `json:"versions,omitempty"`
}

// ProductStatus is the observed state of a product and its inventory.
type ProductStatus struct {
	// observedGeneration is the generation last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions: Ready when the Product owns its productKey; Stalled
	// when another Product already owns it.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// devices is the number of devices in the inventory.
	// +optional
	Devices int64 `json:"devices,omitempty"`
	// slices is the number of DeviceSlices holding the inventory.
	// +optional
	Slices int32 `json:"slices,omitempty"`
	// modules is the version distribution per module.
	// +optional
	// +listType=map
	// +listMapKey=module
	// +kubebuilder:validation:MaxItems=17
	Modules []ModuleVersions `json:"modules,omitempty"`
}

// Product is a product line: its productKey, its modules, and the root of
// its device inventory. Everything of one product lives in the Product's
// namespace.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=prod,categories=ota
// +kubebuilder:printcolumn:name="Product Key",type=string,JSONPath=`.spec.productKey`
// +kubebuilder:printcolumn:name="Devices",type=integer,JSONPath=`.status.devices`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Modules",type=string,JSONPath=`.spec.modules`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Product struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired product.
	// +required
	Spec ProductSpec `json:"spec"`
	// status is the observed product and inventory.
	// +optional
	Status ProductStatus `json:"status,omitempty"`
}

// ProductList is a list of Products.
// +kubebuilder:object:root=true
type ProductList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Product `json:"items"`
}

func init() {
	register(&Product{}, &ProductList{})
}
