// Command kube-apiserver is the upstream API server, built from the module
// proxy so that tests and the playground run a real control plane without
// downloading a prebuilt binary.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
