// Command manager runs the otafleet operator: the Firmware, Product,
// VerificationRun and UpgradeBatch controllers, the MQTT gateway to the
// device fleet and the rollout engine.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	// Maintenance windows name IANA time zones; the distroless image has
	// no zone database, so the binary carries one.
	_ "time/tzdata"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/otafleet/otafleet/internal/download"
	"github.com/otafleet/otafleet/internal/operator"
	otascheme "github.com/otafleet/otafleet/internal/scheme"
)

func main() {
	var o operator.Options
	flag.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8080", "Address of the Prometheus metrics endpoint; 0 disables it.")
	flag.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz probes.")
	flag.BoolVar(&o.LeaderElection, "leader-elect", false, "Elect a leader so that only one replica runs the engine.")
	flag.StringVar(&o.LeaderElectionNS, "leader-election-namespace", "", "Namespace of the leader election lease and of the product Leases (default: the pod's).")
	flag.DurationVar(&o.Lease.LeaseDuration, "leader-elect-lease-duration", 15*time.Second, "How long a standby waits before taking over a lease its leader stopped renewing (a SIGKILLed leader cannot release it).")
	flag.DurationVar(&o.Lease.RenewDeadline, "leader-elect-renew-deadline", 10*time.Second, "How long the leader keeps trying to renew its lease before it stops leading and exits; less than the lease duration.")
	flag.DurationVar(&o.Lease.RetryPeriod, "leader-elect-retry-period", 2*time.Second, "How often candidates try to acquire or renew the lease.")
	flag.BoolVar(&o.ProductLeases.Enabled, "product-leases", false,
		"Give each product to one replica at a time by a Lease, and balance products among the replicas (needs --leader-elect).")
	flag.DurationVar(&o.ProductLeases.Duration, "product-lease-duration", 15*time.Second,
		"How long a product stays with a replica that stopped renewing its Lease: the takeover time after a crash.")
	flag.DurationVar(&o.ProductLeases.RetryPeriod, "product-lease-retry-period", 2*time.Second,
		"Time between two rounds of taking and handing over products.")

	flag.StringVar(&o.MQTT.Broker, "mqtt-broker", envOr("OTAFLEET_MQTT_BROKER", ""), "MQTT broker URL, e.g. tcp://mosquitto:1883 or ssl://broker:8883.")
	flag.StringVar(&o.MQTT.ClientID, "mqtt-client-id", "otafleet-manager",
		"MQTT client ID of the operator's persistent session; with --product-leases, the prefix of each product's session (<id>-<productKey>).")
	flag.StringVar(&o.MQTT.CredentialsSecret, "mqtt-credentials-secret", "", "namespace/name of a Secret with username, password and optionally ca.crt, tls.crt, tls.key.")

	flag.StringVar(&o.S3.Endpoint, "s3-endpoint", envOr("OTAFLEET_S3_ENDPOINT", ""), "host:port of the S3-compatible object storage API.")
	flag.StringVar(&o.S3.PublicURL, "s3-public-url", "", "Base URL uploaders (and, with --s3-presigned-urls, devices) reach object storage at; pre-signed URLs are signed for it; default: the --s3-endpoint URL.")
	flag.StringVar(&o.S3.Bucket, "s3-bucket", "otafleet-firmware", "Bucket holding firmware images; created private if missing.")
	flag.StringVar(&o.S3.Region, "s3-region", "us-east-1", "Region of the bucket.")
	flag.Func("shared-object-prefix", "A bucket/prefix every namespace may use as source.object or devicesFrom.object, besides its own <namespace>/ keys; repeatable.",
		func(v string) error { o.S3.SharedObjectPrefixes = append(o.S3.SharedObjectPrefixes, v); return nil })
	flag.BoolVar(&o.S3.Insecure, "s3-insecure", false, "Use plain HTTP to object storage.")
	flag.DurationVar(&o.S3.URLExpiry, "url-expiry", 15*time.Minute, "Lifetime of the pre-signed download URLs given to devices.")
	flag.StringVar(&o.S3.CredentialsSecret, "s3-credentials-secret", "", "namespace/name of a Secret with accessKey and secretKey.")

	flag.StringVar(&o.Download.URL, "download-url", envOr("OTAFLEET_DOWNLOAD_URL", ""), "Base URL devices download images from (http://host or https://host, no port): the otafleet-download service.")
	flag.StringVar(&o.Download.SecretRef, "download-secret", "", "namespace/name of a Secret whose key \"secret\" signs download URLs (shared with otafleet-download).")
	flag.DurationVar(&o.Download.TTL, "download-url-expiry", 15*time.Minute, "Lifetime of the download URLs given to devices.")
	flag.StringVar(&o.Download.BindAddress, "download-bind-address", "", "Also serve downloads from the manager on this address (every replica); empty: a separate otafleet-download Deployment serves them.")
	flag.Int64Var(&o.Download.EgressBytesPerSecond, "download-egress-bytes-per-second", 0, "Cap on the bytes per second the manager's download server sends; 0 is no cap.")
	flag.BoolVar(&o.Download.CacheControl, "download-cdn", false, "Mark downloads cacheable until their URL expires, for a CDN in front of the service.")
	flag.BoolVar(&o.Download.S3PresignedURLs, "s3-presigned-urls", false, "Send devices S3 pre-signed URLs instead of download service URLs: only for devices known to take long URLs with ports.")

	flag.IntVar(&o.Engine.MaxPushPerSecond, "max-push-per-second", 0, "Cap on upgrade pushes per second across all campaigns; 0 is no cap.")
	flag.BoolVar(&o.Engine.IgnoreCampaignRate, "ignore-campaign-rate", false, "Ignore campaigns' ratePerMinute (benchmarks and labs only).")

	flag.StringVar(&o.AppAPI.BindAddress, "app-api-bind-address", "", "Address of the mobile-app API, e.g. :8443; empty disables it.")
	flag.StringVar(&o.AppAPI.KeysSecret, "app-api-keys-secret", "", "namespace/name of a Secret with hmac-secret or public-key.pem for the app API's JWTs.")
	flag.StringVar(&o.AppAPI.TLSSecret, "app-api-tls-secret", "", "namespace/name of a Secret with tls.crt and tls.key for the app API.")
	flag.StringVar(&o.AppAPI.Issuer, "app-api-issuer", "", "Required issuer (iss) of app API tokens.")
	flag.StringVar(&o.AppAPI.Audience, "app-api-audience", "otafleet", "Required audience (aud) of app API tokens.")
	flag.StringVar(&o.AppAPI.AdvertiseURL, "app-api-advertise-url", "",
		"With --product-leases, the URL other replicas forward app API requests for this replica's products to (default: http(s)://$POD_IP:<port>).")

	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	if err := run(ctrl.SetupSignalHandler(), o); err != nil {
		ctrl.Log.Error(err, "Manager stopped")
		os.Exit(1)
	}
}

func run(ctx context.Context, o operator.Options) error {
	// Credentials may also come from the environment, for local runs.
	o.MQTT.Username, o.MQTT.Password = os.Getenv("OTAFLEET_MQTT_USERNAME"), os.Getenv("OTAFLEET_MQTT_PASSWORD")
	o.S3.AccessKey, o.S3.SecretKey = os.Getenv("OTAFLEET_S3_ACCESS_KEY"), os.Getenv("OTAFLEET_S3_SECRET_KEY")
	if s := os.Getenv("OTAFLEET_DOWNLOAD_SECRET"); s != "" {
		secret, err := download.ParseSecret([]byte(s))
		if err != nil {
			return fmt.Errorf("OTAFLEET_DOWNLOAD_SECRET: %w", err)
		}
		o.Download.Secret = secret
	}
	if err := o.Validate(); err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	direct, err := client.New(cfg, client.Options{Scheme: otascheme.New()})
	if err != nil {
		return err
	}
	if err := o.LoadSecrets(ctx, direct); err != nil {
		return err
	}
	mgr, err := operator.NewManager(cfg, o)
	if err != nil {
		return err
	}
	if _, err := operator.Setup(mgr, o); err != nil {
		return err
	}
	ctrl.Log.Info("Starting manager", "mqttBroker", o.MQTT.Broker, "s3Endpoint", o.S3.Endpoint, "bucket", o.S3.Bucket)
	return mgr.Start(ctx)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
