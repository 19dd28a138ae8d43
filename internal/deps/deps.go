// Package deps pins modules that packages under construction will import,
// so `go mod tidy` keeps them while those packages land. It is removed once
// every module here is imported for real.
package deps

import (
	_ "github.com/eclipse/paho.mqtt.golang"
	_ "github.com/golang-jwt/jwt/v5"
	_ "github.com/minio/minio-go/v7"
	_ "github.com/mochi-mqtt/server/v2"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/spf13/cobra"
	_ "golang.org/x/time/rate"
	_ "k8s.io/cli-runtime/pkg/genericclioptions"
)
