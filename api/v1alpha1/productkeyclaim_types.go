package v1alpha1

import (
	"encoding/hex"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ProductKeyClaimSpec records which namespace owns a productKey.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a claim is immutable: delete it to release the productKey"
type ProductKeyClaimSpec struct {
	// productKey is the claimed key.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]+$`
	ProductKey string `json:"productKey"`
	// namespace owns the key: only Products in it may use it.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`
}

// ProductKeyClaim gives a productKey to one namespace. The operator creates
// it when the first Product with the key is accepted, and never deletes or
// moves it: deleting a Product does not free its key for other teams. A
// cluster admin releases a key by deleting its claim.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=pkc
// +kubebuilder:printcolumn:name="Product Key",type=string,JSONPath=`.spec.productKey`
// +kubebuilder:printcolumn:name="Namespace",type=string,JSONPath=`.spec.namespace`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ProductKeyClaim struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the claim.
	// +required
	Spec ProductKeyClaimSpec `json:"spec"`
}

// ProductKeyClaimList is a list of ProductKeyClaims.
// +kubebuilder:object:root=true
type ProductKeyClaimList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ProductKeyClaim `json:"items"`
}

// ClaimName is the name of a productKey's claim. productKeys allow upper
// case and '_', which object names do not, so the key is hex-encoded: one
// name per key and no two keys on one name.
func ClaimName(productKey string) string {
	return "pk-" + hex.EncodeToString([]byte(productKey))
}

func init() {
	register(&ProductKeyClaim{}, &ProductKeyClaimList{})
}
