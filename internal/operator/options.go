// Package operator assembles the otafleet manager: the controllers, the MQTT
// gateway and the rollout engine, with their settings. cmd/manager fills
// Options from flags; the playground fills them in code.
package operator

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/otafleet/otafleet/internal/appapi"
	"github.com/otafleet/otafleet/internal/download"
)

// Options are the manager's settings.
type Options struct {
	MetricsAddr      string
	ProbeAddr        string
	LeaderElection   bool
	LeaderElectionNS string
	// Lease tunes leader election; zero fields keep controller-runtime's
	// defaults (15 s, 10 s, 2 s).
	Lease LeaseOptions

	// ProductLeases, when enabled, gives each product to one replica at a
	// time by Lease (internal/shard) instead of every product to the leader.
	ProductLeases ProductLeaseOptions

	MQTT     MQTTOptions
	S3       S3Options
	Download DownloadOptions
	Engine   EngineOptions
	AppAPI   AppAPIOptions
}

// LeaseOptions are the leader election's timings. A standby takes over
// at most LeaseDuration after a leader died without releasing the lease
// (SIGKILL, a lost node); a leader that cannot renew within RenewDeadline
// (an API server outage) stops leading and exits.
type LeaseOptions struct {
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
}

// DownloadOptions say where devices download images: otafleet's download
// service, at short signed URLs that devices built on the vendor's SDKs
// take (no port, under 200 bytes). S3 pre-signed URLs are far longer and
// are sent only when S3PresignedURLs opts in.
type DownloadOptions struct {
	// URL is the service's base URL as devices reach it: http://host or
	// https://host, on the scheme's default port.
	URL string
	// SecretRef is "namespace/name" of a Secret whose key "secret" holds
	// the HMAC secret shared with the download service's replicas.
	SecretRef string
	Secret    []byte
	// TTL is how long a download URL stays valid; a device whose URL
	// expired asks again (firmware/get) and gets a fresh one.
	TTL time.Duration
	// BindAddress, when set, also serves downloads from the manager, on
	// every replica (a separate Deployment of otafleet-download is the
	// production setup; the playground serves from the manager).
	BindAddress string
	// EgressBytesPerSecond caps what the manager's download server sends.
	EgressBytesPerSecond int64
	// CacheControl lets a CDN cache downloads until their URL expires.
	CacheControl bool
	// S3PresignedURLs sends S3 pre-signed URLs to devices instead: only
	// for devices known to take long URLs with ports.
	S3PresignedURLs bool
}

// AppAPIOptions configure the HTTP API for the vendor's mobile-app backend.
type AppAPIOptions struct {
	// BindAddress enables the API when set, e.g. ":8443".
	BindAddress string
	// KeysSecret is "namespace/name" of a Secret with hmac-secret or
	// public-key.pem, which verify the callers' JWTs.
	KeysSecret string
	// TLSSecret is "namespace/name" of a Secret with tls.crt and tls.key.
	TLSSecret string
	Issuer    string
	Audience  string
	// AdvertiseURL is where the other replicas forward requests for this
	// replica's products (product Leases); default http(s)://$POD_IP and
	// the bind address's port.
	AdvertiseURL string

	Keys       appapi.Keys
	TLSCertPEM []byte
	TLSKeyPEM  []byte
}

// EngineOptions tune the rollout engine.
type EngineOptions struct {
	// MaxPushPerSecond caps pushes across all campaigns; 0 is no cap.
	MaxPushPerSecond int
	// IgnoreCampaignRate pushes as fast as MaxPushPerSecond allows; for
	// benchmarks and labs only.
	IgnoreCampaignRate bool
}

// ProductLeaseOptions tune the ownership of products by Lease.
type ProductLeaseOptions struct {
	Enabled bool
	// Duration is how long a product stays with a replica that stopped
	// renewing its Lease (a killed replica): the takeover time, before
	// the new owner's rebuild.
	Duration time.Duration
	// RetryPeriod is the time between two ownership rounds.
	RetryPeriod time.Duration
}

// MQTTOptions say how to reach the broker.
type MQTTOptions struct {
	// Broker is the broker URL: tcp://host:1883, ssl://host:8883 or
	// ws(s)://host/path.
	Broker string
	// ClientID identifies the operator's persistent session; replicas
	// share it under leader election. With product Leases it is the
	// prefix of each product's session: <ClientID>-<productKey>.
	ClientID string
	// CredentialsSecret is "namespace/name" of a Secret with the keys
	// username, password, and optionally ca.crt, tls.crt and tls.key.
	CredentialsSecret string

	Username string
	Password string
	CAPEM    []byte
	CertPEM  []byte
	KeyPEM   []byte
}

// S3Options say how to reach object storage.
type S3Options struct {
	// Endpoint is host:port of the S3 API as the operator reaches it.
	Endpoint string
	// PublicURL is the base URL devices download from (http://host or
	// https://host); pre-signed URLs are signed for it. Defaults to the
	// Endpoint's URL.
	PublicURL string
	Bucket    string
	Region    string
	Insecure  bool
	// SharedObjectPrefixes are "bucket/prefix" entries every namespace may
	// read as an object source or device list, besides its own
	// "<namespace>/" keys (docs/tenancy.md).
	SharedObjectPrefixes []string
	// URLExpiry is how long pre-signed download URLs stay valid.
	URLExpiry time.Duration
	// CredentialsSecret is "namespace/name" of a Secret with the keys
	// accessKey and secretKey.
	CredentialsSecret string

	AccessKey string
	SecretKey string
}

// LoadSecrets fills credentials from the Secrets named in the options. It
// uses a direct client because the manager's cache is not running yet.
func (o *Options) LoadSecrets(ctx context.Context, c client.Reader) error {
	if ref := o.MQTT.CredentialsSecret; ref != "" {
		data, err := readSecret(ctx, c, ref)
		if err != nil {
			return fmt.Errorf("MQTT credentials: %w", err)
		}
		o.MQTT.Username, o.MQTT.Password = string(data["username"]), string(data["password"])
		o.MQTT.CAPEM, o.MQTT.CertPEM, o.MQTT.KeyPEM = data["ca.crt"], data["tls.crt"], data["tls.key"]
	}
	if err := o.loadAppAPISecrets(ctx, c); err != nil {
		return err
	}
	if ref := o.Download.SecretRef; ref != "" {
		data, err := readSecret(ctx, c, ref)
		if err != nil {
			return fmt.Errorf("download URL secret: %w", err)
		}
		if o.Download.Secret, err = download.ParseSecret(data["secret"]); err != nil {
			return fmt.Errorf("download URL secret %s (key \"secret\"): %w", ref, err)
		}
	}
	if ref := o.S3.CredentialsSecret; ref != "" {
		data, err := readSecret(ctx, c, ref)
		if err != nil {
			return fmt.Errorf("S3 credentials: %w", err)
		}
		o.S3.AccessKey, o.S3.SecretKey = string(data["accessKey"]), string(data["secretKey"])
		if o.S3.AccessKey == "" || o.S3.SecretKey == "" {
			return fmt.Errorf("S3 credentials: Secret %s needs the keys accessKey and secretKey", ref)
		}
	}
	return nil
}

func readSecret(ctx context.Context, c client.Reader, ref string) (map[string][]byte, error) {
	ns, name, ok := strings.Cut(ref, "/")
	if !ok || ns == "" || name == "" {
		return nil, fmt.Errorf("secret reference %q is not namespace/name", ref)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
		return nil, fmt.Errorf("reading Secret %s: %w", ref, err)
	}
	return s.Data, nil
}

func (o *Options) loadAppAPISecrets(ctx context.Context, c client.Reader) error {
	a := &o.AppAPI
	if a.BindAddress == "" {
		return nil
	}
	if a.KeysSecret == "" {
		return fmt.Errorf("the app API needs --app-api-keys-secret")
	}
	data, err := readSecret(ctx, c, a.KeysSecret)
	if err != nil {
		return fmt.Errorf("app API keys: %w", err)
	}
	if a.Keys, err = appapi.KeysFromSecretData(data); err != nil {
		return fmt.Errorf("app API keys: %w", err)
	}
	if a.TLSSecret != "" {
		data, err := readSecret(ctx, c, a.TLSSecret)
		if err != nil {
			return fmt.Errorf("app API TLS: %w", err)
		}
		a.TLSCertPEM, a.TLSKeyPEM = data["tls.crt"], data["tls.key"]
	}
	return nil
}

// Validate reports settings that cannot work.
func (o *Options) Validate() error {
	if o.MQTT.Broker == "" {
		return fmt.Errorf("an MQTT broker is required (--mqtt-broker)")
	}
	if o.S3.Endpoint == "" || o.S3.Bucket == "" {
		return fmt.Errorf("an S3 endpoint and bucket are required (--s3-endpoint, --s3-bucket)")
	}
	if o.ProductLeases.Enabled && !o.LeaderElection {
		return fmt.Errorf("--product-leases needs --leader-elect: the leader still runs the cluster-wide controllers")
	}
	if o.S3.URLExpiry < time.Minute || o.S3.URLExpiry > 7*24*time.Hour {
		return fmt.Errorf("--url-expiry must be between 1m and 168h, got %s", o.S3.URLExpiry)
	}
	return o.Download.validate()
}

// validate refuses, at start, a download configuration whose URLs a device
// could not take: better no manager than pushes that crash devices.
func (d *DownloadOptions) validate() error {
	if d.S3PresignedURLs {
		return nil
	}
	if d.URL == "" {
		return fmt.Errorf("devices need a download URL (--download-url http://host, served by otafleet-download " +
			"or --download-bind-address); --s3-presigned-urls sends long S3 URLs instead, which devices built on the vendor SDK cannot take")
	}
	// The secret is loaded later; a placeholder checks the URL's shape and
	// the length of the longest URL the manager will sign.
	s, err := download.NewSigner(d.URL, make([]byte, download.MinSecretBytes), d.TTL)
	if err != nil {
		return fmt.Errorf("--download-url: %w", err)
	}
	if _, err := s.URL(LongestImageKey, time.Now()); err != nil {
		return fmt.Errorf("--download-url %s: %w", d.URL, err)
	}
	return nil
}

// LongestImageKey has the length of every stored image's key
// ("_img/<uid>.bin"), the part of a download URL the host adds to.
const LongestImageKey = "_img/00000000-0000-0000-0000-000000000000.bin"
