package operator

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/otafleet/otafleet/controllers"
	"github.com/otafleet/otafleet/internal/appapi"
	"github.com/otafleet/otafleet/internal/download"
	"github.com/otafleet/otafleet/internal/fleet"
	"github.com/otafleet/otafleet/internal/mqtt"
	"github.com/otafleet/otafleet/internal/shard"
	"github.com/otafleet/otafleet/internal/storage"
)

// Components are the parts Setup adds to the manager, for callers (the
// playground, tests) that want to look at them. With product Leases there
// is no one gateway and engine: Router has the engines of the products
// this replica owns.
type Components struct {
	Store   *storage.MinIO
	Gateway *mqtt.Gateway
	Engine  *fleet.Engine
	Router  *shard.Router
}

// Setup adds object storage, the MQTT gateway, the rollout engine and the
// controllers to mgr.
func Setup(mgr ctrl.Manager, o Options) (*Components, error) {
	store, err := storage.New(storage.Config{
		Endpoint: o.S3.Endpoint, Insecure: o.S3.Insecure, PublicURL: o.S3.PublicURL,
		AccessKey: o.S3.AccessKey, SecretKey: o.S3.SecretKey, Region: o.S3.Region, URLExpiry: o.S3.URLExpiry,
	})
	if err != nil {
		return nil, err
	}
	urls, err := deviceURLs(o, store)
	if err != nil {
		return nil, err
	}
	mcfg, err := mqttConfig(o.MQTT)
	if err != nil {
		return nil, err
	}
	parts := &Components{Store: store}
	if o.ProductLeases.Enabled {
		err = setupShards(mgr, o, urls, mcfg, parts)
	} else {
		err = setupLeader(mgr, o, urls, mcfg, parts)
	}
	if err != nil {
		return nil, err
	}
	engine := controllers.Engine(parts.Engine)
	appEngine := appapi.Engine(parts.Engine)
	if parts.Router != nil {
		engine, appEngine = parts.Router, parts.Router
	}
	if err := setupControllers(mgr, o, store, engine); err != nil {
		return nil, err
	}
	if err := addDownloadServer(mgr, o, store); err != nil {
		return nil, err
	}
	if a := o.AppAPI; a.BindAddress != "" {
		srv, err := appapi.New(appapi.Config{Addr: a.BindAddress, Keys: a.Keys, Issuer: a.Issuer, Audience: a.Audience,
			TLSCertPEM: a.TLSCertPEM, TLSKeyPEM: a.TLSKeyPEM, Registerer: registry}, appEngine)
		if err != nil {
			return nil, fmt.Errorf("app API: %w", err)
		}
		if err := mgr.Add(srv); err != nil {
			return nil, err
		}
	}
	return parts, nil
}

// engineOptions are the engine's settings for every product, or for one.
func engineOptions(o Options, productKey string) fleet.Options {
	return fleet.Options{
		MaxPushPerSecond: o.Engine.MaxPushPerSecond, IgnoreCampaignRate: o.Engine.IgnoreCampaignRate,
		LongURLs: o.Download.S3PresignedURLs, ProductKey: productKey,
	}
}

// setupLeader runs one engine and one gateway for every product on the
// leader.
func setupLeader(mgr ctrl.Manager, o Options, urls fleet.URLSigner, mcfg mqtt.Config, parts *Components) error {
	engine := fleet.New(mgr.GetClient(), mgr.GetAPIReader(), nil, urls, engineOptions(o, ""), ctrl.Log.WithName("fleet"))
	gw, err := mqtt.New(mcfg, engine)
	if err != nil {
		return err
	}
	engine.SetPublisher(gw)
	gw.StayFor = engine.Stopped()
	if err := registry.Register(fleet.NewCollector(engine)); err != nil {
		return err
	}
	parts.Engine, parts.Gateway = engine, gw
	return errors.Join(mgr.Add(engine), mgr.Add(gw))
}

func setupControllers(mgr ctrl.Manager, o Options, store *storage.MinIO, engine controllers.Engine) error {
	c := mgr.GetClient()
	reconcilers := []interface{ SetupWithManager(ctrl.Manager) error }{
		&controllers.FirmwareReconciler{Client: c, APIReader: mgr.GetAPIReader(), Store: store, Bucket: o.S3.Bucket,
			SharedObjectPrefixes: o.S3.SharedObjectPrefixes, Recorder: mgr.GetEventRecorder("firmware-controller")},
		&controllers.ProductReconciler{Client: c, Engine: engine, Recorder: mgr.GetEventRecorder("product-controller")},
		&controllers.VerificationRunReconciler{Client: c, Engine: engine, Recorder: mgr.GetEventRecorder("verificationrun-controller")},
		&controllers.UpgradeBatchReconciler{Client: c, Engine: engine, Recorder: mgr.GetEventRecorder("upgradebatch-controller"),
			Objects: store, Bucket: o.S3.Bucket, SharedObjectPrefixes: o.S3.SharedObjectPrefixes},
	}
	for _, r := range reconcilers {
		if err := r.SetupWithManager(mgr); err != nil {
			return fmt.Errorf("setting up %T: %w", r, err)
		}
	}
	return nil
}

// deviceURLs chooses how pushes name the image: a short URL of the
// download service, or (opted in) an S3 pre-signed URL.
func deviceURLs(o Options, store *storage.MinIO) (fleet.URLSigner, error) {
	if o.Download.S3PresignedURLs {
		if w := store.DevicePortWarning(); w != "" {
			ctrl.Log.Info("Devices may not reach firmware downloads", "warning", w)
		}
		ctrl.Log.Info("Devices get S3 pre-signed URLs (--s3-presigned-urls): devices built on the vendor SDK cannot take them")
		return presigner{store, o.S3.URLExpiry}, nil
	}
	s, err := download.NewSigner(o.Download.URL, o.Download.Secret, o.Download.TTL)
	if err != nil {
		return nil, fmt.Errorf("download URLs: %w", err)
	}
	return serviceURLs{s}, nil
}

// serviceURLs signs short URLs of the download service. The service serves
// the operator's bucket, where every image is stored, so the bucket is not
// part of the URL.
type serviceURLs struct{ s *download.Signer }

func (u serviceURLs) PresignGet(_ context.Context, _, key string) (string, error) {
	return u.s.URL(key, time.Now())
}

// presigner adapts storage to the engine: every push gets a freshly signed
// S3 URL.
type presigner struct {
	store  *storage.MinIO
	expiry time.Duration
}

func (s presigner) PresignGet(ctx context.Context, bucket, key string) (string, error) {
	u, err := s.store.PresignGet(ctx, bucket, key, s.expiry)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

func mqttConfig(o MQTTOptions) (mqtt.Config, error) {
	c := mqtt.Config{
		Brokers: []string{o.Broker}, ClientID: o.ClientID, Username: o.Username, Password: o.Password,
		Registerer: registry,
	}
	if len(o.CAPEM) > 0 || len(o.CertPEM) > 0 {
		t := &tls.Config{MinVersion: tls.VersionTLS12}
		if len(o.CAPEM) > 0 {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(o.CAPEM) {
				return c, fmt.Errorf("MQTT ca.crt holds no PEM certificate")
			}
			t.RootCAs = pool
		}
		if len(o.CertPEM) > 0 {
			cert, err := tls.X509KeyPair(o.CertPEM, o.KeyPEM)
			if err != nil {
				return c, fmt.Errorf("MQTT client certificate: %w", err)
			}
			t.Certificates = []tls.Certificate{cert}
		}
		c.TLS = t
	}
	return c, nil
}
