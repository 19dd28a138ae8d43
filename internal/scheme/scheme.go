// Package scheme builds the runtime scheme every otafleet client uses: the
// Kubernetes built-in types plus the ota.otafleet.dev API.
package scheme

import (
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
)

// New returns a scheme with the Kubernetes built-in types and ours.
func New() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := otav1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}
