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
	"net/http"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/otafleet/otafleet/internal/mqtt"
	"github.com/otafleet/otafleet/internal/operator"
	"github.com/otafleet/otafleet/internal/testserver"
)

// Options tune a lab.
type Options struct {
	// BrokerAddress is where the MQTT broker listens; empty picks a free
	// loopback port. The playground uses :1883, the devices' standard port.
	BrokerAddress string
	// StorageAddress is where MinIO listens; empty picks a free loopback
	// port.
	StorageAddress string
	// DownloadAddress is where the lab's download service listens; empty
	// picks a free loopback port. ":80" lets a real device on the desk
	// download (devices built on the vendor SDK ignore URL ports).
	DownloadAddress string
	// DownloadHost is the host name (or address) in download URLs;
	// DefaultDownloadHost when empty. Simulated devices resolve it to
	// DownloadAddress through DeviceHosts.
	DownloadHost string
	// Mosquitto runs Mosquitto (a separate process) instead of the embedded
	// Mochi broker; the benchmarks use it to keep the broker's cost out of
	// the measured process. BrokerAddress does not apply.
	Mosquitto bool
	// BrokerQueue is the broker's per-client outbound queue; the
	// operator's session must hold a whole fleet's burst (the broker drops
	// beyond it). Zero is the lab default: 16384 for Mochi, 1,000,000 for
	// Mosquitto.
	BrokerQueue int32
	// DataDir keeps MinIO's data there; empty uses a temporary directory.
	DataDir string
	// Engine tunes the rollout engine.
	Engine operator.EngineOptions
	// Log receives the manager's logs; the zero value discards them.
	Log logr.Logger
	// MetricsAddr serves the manager's metrics there ("127.0.0.1:8080");
	// empty turns them off.
	MetricsAddr string
	// AppAPI starts the app API when its BindAddress is set.
	AppAPI operator.AppAPIOptions
}

// Lab is a running control plane, broker, storage and manager.
//
// The manager can be stopped and started again (RestartManager) against the
// same control plane, broker and storage, as a new leader takes over after a
// crash or a rollout of the operator. Parts then points to the new
// manager's components; a Lab is not safe for concurrent use while it does.
type Lab struct {
	ControlPlane *testserver.ControlPlane
	// Broker is the embedded broker (nil with Options.Mosquitto);
	// BrokerURL is the broker's URL either way.
	Broker    *testserver.Mochi
	Mosquitto *testserver.Mosquitto
	BrokerURL string
	Storage   *testserver.MinIO
	// Parts are the running manager's components (the last one's once it
	// stopped).
	Parts   *operator.Components
	Options operator.Options
	// DownloadHost and DownloadAddr: devices download from
	// http://DownloadHost/..., which the manager serves on DownloadAddr.
	DownloadHost string
	DownloadAddr string
	download     *http.Server

	run *managerRun
}

// managerRun is one run of the manager, from StartManager to StopManager.
type managerRun struct {
	cancel context.CancelFunc
	done   chan struct{} // closed once mgr.Start returned
	err    error         // what mgr.Start returned; read after done
}

// Start brings everything up and returns once the rollout engine is ready
// and the MQTT gateway is subscribed.
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
	dl, err := l.downloadOptions(o)
	if err != nil {
		return nil, err
	}
	metrics := o.MetricsAddr
	if metrics == "" {
		metrics = "0"
	}
	l.Options = operator.Options{
		MetricsAddr: metrics, ProbeAddr: "0", AppAPI: o.AppAPI,
		MQTT: operator.MQTTOptions{Broker: l.BrokerURL, ClientID: "otafleet-lab"},
		S3: operator.S3Options{Endpoint: l.Storage.Endpoint, Insecure: true, Bucket: labBucket,
			Region: "us-east-1", URLExpiry: 15 * time.Minute, AccessKey: l.Storage.AccessKey, SecretKey: l.Storage.SecretKey},
		Download: dl,
		Engine:   o.Engine,
	}
	ctrl.SetLogger(o.Log)
	return l, l.StartManager(ctx)
}

// StartManager starts a manager (controllers, MQTT gateway, rollout engine)
// with l.Options against the lab's control plane, broker and storage, and
// returns once its engine has rebuilt the fleet state from the slices and
// its gateway is subscribed, that is, once it takes work. It fails if a
// manager is running.
//
// Several managers can run one after another in a process: operator
// replaces the previous manager's metrics collectors and skips the
// controller name check. The lab runs without leader election; the MQTT
// client ID is the same for every run, so the new manager takes over the
// persistent session, with the device reports the broker queued meanwhile.
func (l *Lab) StartManager(ctx context.Context) error {
	if l.run != nil {
		return errors.New("a manager is already running; stop it first")
	}
	mgr, err := operator.NewManager(l.ControlPlane.Config, l.Options)
	if err != nil {
		return err
	}
	parts, err := operator.Setup(mgr, l.Options)
	if err != nil {
		return err
	}
	mctx, cancel := context.WithCancel(context.Background())
	r := &managerRun{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = mgr.Start(mctx)
	}()
	l.Parts, l.run = parts, r
	return l.waitReady(ctx, r)
}

// StopManager stops the running manager the way a SIGTERM does: it cancels
// the manager's context and waits until mgr.Start returned (the engine has
// written what was pending and the gateway has left the broker, leaving
// unacknowledged device reports queued in its session). It returns the
// manager's error, if it stopped with one. Without a running manager it
// does nothing.
func (l *Lab) StopManager(ctx context.Context) error {
	r := l.run
	if r == nil {
		return nil
	}
	r.cancel()
	select {
	case <-r.done:
	case <-ctx.Done():
		return fmt.Errorf("the manager did not stop: %w", ctx.Err())
	}
	l.run = nil
	// mgr.Start also returns when runnables outlive the graceful shutdown
	// timeout. A gateway still connected would fight the next one over the
	// client ID (the broker drops the older connection, which reconnects),
	// so make sure it is gone.
	if err := l.Parts.Gateway.WaitFor(ctx, func(s mqtt.ConnectionState) bool { return !s.Connected }); err != nil {
		return fmt.Errorf("the stopped manager's MQTT client is still connected: %w", err)
	}
	if r.err != nil {
		return fmt.Errorf("the manager stopped with an error: %w", r.err)
	}
	return nil
}

// RestartManager stops the running manager and starts a new one against
// the same control plane, broker and storage (StopManager, then
// StartManager): what happens when the operator's pod is replaced. It
// returns once the new engine has rebuilt its state and takes work; Parts
// then points to the new manager's components.
func (l *Lab) RestartManager(ctx context.Context) error {
	if err := l.StopManager(ctx); err != nil {
		return err
	}
	return l.StartManager(ctx)
}

func (l *Lab) startBroker(ctx context.Context, o Options) (err error) {
	if o.Mosquitto {
		if l.Mosquitto, err = testserver.StartMosquitto(ctx, testserver.MosquittoOptions{MaxQueued: int(o.BrokerQueue)}); err == nil {
			l.BrokerURL = l.Mosquitto.URL
		}
		return err
	}
	// Devices built on LinkSDK 4.x never subscribe: the broker does it for
	// them, as the vendor's does.
	l.Broker, err = testserver.StartMochi(testserver.MochiOptions{Address: o.BrokerAddress,
		MaxClientWritesPending: o.BrokerQueue, AutoSubscribeOTA: true})
	if err == nil {
		l.BrokerURL = l.Broker.URL
	}
	return err
}

func (l *Lab) waitReady(ctx context.Context, r *managerRun) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !l.ready() {
		select {
		case <-r.done:
			return fmt.Errorf("the manager stopped: %w", r.err)
		case <-ctx.Done():
			return fmt.Errorf("the manager did not take work within 2 minutes (engine ready %t, MQTT %+v)",
				l.Parts.Engine.Ready(), l.Parts.Gateway.State())
		case <-t.C:
		}
	}
	return nil
}

// ready: the engine rebuilt its state and the gateway receives device
// reports.
func (l *Lab) ready() bool {
	s := l.Parts.Gateway.State()
	return l.Parts.Engine.Ready() && s.Connected && s.Subscribed
}

// Stop stops the manager and the servers, and removes their data.
func (l *Lab) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	_ = l.StopManager(ctx) // the manager's error on the way out is of no use now
	cancel()
	if l.download != nil {
		_ = l.download.Close()
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
