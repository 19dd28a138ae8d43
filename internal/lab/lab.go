// Package lab runs the whole of otafleet on one machine: a real
// kube-apiserver and etcd, an embedded MQTT broker, MinIO, and the manager
// in process. The playground, the end-to-end tests and the benchmarks build
// on it; they add a simulated fleet and drive rollouts through the API, as
// a user would.
package lab

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/otafleet/otafleet/internal/operator"
	"github.com/otafleet/otafleet/internal/testserver"
)

// Options tune a lab.
type Options struct {
	// BrokerAddress is where the MQTT broker listens; empty picks a free
	// loopback port. The playground uses :1883, the devices' standard port.
	BrokerAddress string
	// StorageAddress is where MinIO listens; empty picks a free loopback
	// port. ":80" lets devices built on the vendor SDK download.
	StorageAddress string
	// Mosquitto runs Mosquitto (a separate process) instead of the embedded
	// Mochi broker; the benchmarks use it to keep the broker's cost out of
	// the measured process. BrokerAddress and BrokerQueue do not apply.
	Mosquitto bool
	// BrokerQueue is the embedded broker's per-client outbound queue; the
	// operator's session must hold a whole fleet's burst (Mochi drops
	// beyond it). Zero is Mochi's lab default, 16384.
	BrokerQueue int32
	// DataDir keeps MinIO's data there; empty uses a temporary directory.
	DataDir string
	// Engine tunes the rollout engine.
	Engine operator.EngineOptions
	// Log receives the manager's logs; the zero value discards them.
	Log logr.Logger
}

// Lab is a running control plane, broker, storage and manager.
type Lab struct {
	ControlPlane *testserver.ControlPlane
	// Broker is the embedded broker (nil with Options.Mosquitto);
	// BrokerURL is the broker's URL either way.
	Broker    *testserver.Mochi
	Mosquitto *testserver.Mosquitto
	BrokerURL string
	Storage   *testserver.MinIO
	Parts     *operator.Components
	Options   operator.Options

	cancel  context.CancelFunc
	mgrDone chan error
}

// Start brings everything up and returns once the rollout engine is ready.
func Start(ctx context.Context, o Options) (_ *Lab, err error) {
	l := &Lab{}
	defer func() {
		if err != nil {
			l.Stop()
		}
	}()
	if l.ControlPlane, err = testserver.StartControlPlane(); err != nil {
		return nil, err
	}
	if err := l.startBroker(ctx, o); err != nil {
		return nil, fmt.Errorf("starting the MQTT broker: %w", err)
	}
	if l.Storage, err = testserver.StartMinIO(ctx, testserver.MinIOOptions{Address: o.StorageAddress, DataDir: o.DataDir}); err != nil {
		return nil, fmt.Errorf("starting MinIO: %w", err)
	}
	l.Options = operator.Options{
		MetricsAddr: "0", ProbeAddr: "0",
		MQTT: operator.MQTTOptions{Broker: l.BrokerURL, ClientID: "otafleet-lab"},
		S3: operator.S3Options{Endpoint: l.Storage.Endpoint, Insecure: true, Bucket: "otafleet-firmware",
			Region: "us-east-1", URLExpiry: 15 * time.Minute, AccessKey: l.Storage.AccessKey, SecretKey: l.Storage.SecretKey},
		Engine: o.Engine,
	}
	ctrl.SetLogger(o.Log)
	mgr, err := operator.NewManager(l.ControlPlane.Config, l.Options)
	if err != nil {
		return nil, err
	}
	if l.Parts, err = operator.Setup(mgr, l.Options); err != nil {
		return nil, err
	}
	mctx, cancel := context.WithCancel(context.Background())
	l.cancel, l.mgrDone = cancel, make(chan error, 1)
	go func() { l.mgrDone <- mgr.Start(mctx) }()
	return l, l.waitReady(ctx)
}

func (l *Lab) startBroker(ctx context.Context, o Options) (err error) {
	if o.Mosquitto {
		if l.Mosquitto, err = testserver.StartMosquitto(ctx, testserver.MosquittoOptions{}); err == nil {
			l.BrokerURL = l.Mosquitto.URL
		}
		return err
	}
	l.Broker, err = testserver.StartMochi(testserver.MochiOptions{Address: o.BrokerAddress, MaxClientWritesPending: o.BrokerQueue})
	if err == nil {
		l.BrokerURL = l.Broker.URL
	}
	return err
}

func (l *Lab) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !l.Parts.Engine.Ready() {
		select {
		case err := <-l.mgrDone:
			return fmt.Errorf("the manager stopped: %w", err)
		case <-ctx.Done():
			return errors.New("the rollout engine did not become ready within 2 minutes")
		case <-t.C:
		}
	}
	return nil
}

// Stop stops the manager and the servers, and removes their data.
func (l *Lab) Stop() {
	if l.cancel != nil {
		l.cancel()
		select {
		case err := <-l.mgrDone:
			_ = err // the manager's error on the way out is of no use now
		case <-time.After(30 * time.Second):
		}
	}
	if l.Storage != nil {
		_ = l.Storage.Stop()
	}
	if l.Broker != nil {
		_ = l.Broker.Stop()
	}
	if l.Mosquitto != nil {
		_ = l.Mosquitto.Stop()
	}
	if l.ControlPlane != nil {
		_ = l.ControlPlane.Stop()
	}
}
