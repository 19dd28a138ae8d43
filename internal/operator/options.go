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
)

// Options are the manager's settings.
type Options struct {
	MetricsAddr      string
	ProbeAddr        string
	LeaderElection   bool
	LeaderElectionNS string

	MQTT   MQTTOptions
	S3     S3Options
	Engine EngineOptions
	AppAPI AppAPIOptions
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

// MQTTOptions say how to reach the broker.
type MQTTOptions struct {
	// Broker is the broker URL: tcp://host:1883, ssl://host:8883 or
	// ws(s)://host/path.
	Broker string
	// ClientID identifies the operator's persistent session; replicas
	// share it only under leader election.
	ClientID string
	// SharedGroup, when set, subscribes through $share/<group>/ so that
	// several replicas split the device traffic.
	SharedGroup string
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
	if o.S3.URLExpiry < time.Minute || o.S3.URLExpiry > 7*24*time.Hour {
		return fmt.Errorf("--url-expiry must be between 1m and 168h, got %s", o.S3.URLExpiry)
	}
	return nil
}
