package appapi

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

// With products owned by Lease (docs/replicas.md) a replica's engine knows
// only its own products. A request for devices of another replica's
// products is forwarded to that replica's app API, once: a forwarded
// request that lands on a replica that does not own them either (the
// products just moved) is answered 503, and the app retries.

// headerForwarded marks a request one replica forwarded to another.
const headerForwarded = "X-Otafleet-Forwarded"

// owner is an Engine whose products are shared among replicas (a
// *shard.Router): it answers only for the products it owns, and knows the
// app API of the replica that owns another one.
type owner interface {
	Owns(productKey string) bool
	OwnerURL(productKey string) (string, bool)
}

// elsewhere is a caller whose devices another replica serves; url is that
// replica's app API, "" when unknown or not one replica.
type elsewhere struct {
	*apiError
	url string
}

func (e *elsewhere) Unwrap() error { return e.apiError }

// here checks that this replica serves every device of the caller. When
// one other replica serves them all, the error names it; a caller whose
// devices several replicas serve is refused (503), for now.
func (s *Server) here(c *caller) error {
	o, ok := s.eng.(owner)
	if !ok {
		return nil
	}
	local, urls := 0, map[string]bool{}
	for _, d := range c.order {
		if o.Owns(d.pk) {
			local++
			continue
		}
		u, known := o.OwnerURL(d.pk)
		if !known {
			return &elsewhere{apiError: unavailable(d)}
		}
		urls[u] = true
	}
	if len(urls) == 0 {
		return nil
	}
	e := &elsewhere{apiError: unavailable(c.order[0])}
	if local == 0 && len(urls) == 1 {
		for u := range urls {
			e.url = u
		}
	}
	return e
}

func unavailable(d device) *apiError {
	return &apiError{status: http.StatusServiceUnavailable, retryAfter: time.Second, message: "the product of device " +
		d.String() + " is served by another replica of the operator, which could not be reached; retry (docs/replicas.md)"}
}

// forward sends r to the replica that serves its devices, if err names
// one and r was not forwarded already, and reports whether it did.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, err error) bool {
	var e *elsewhere
	if !errors.As(err, &e) || e.url == "" || r.Header.Get(headerForwarded) != "" {
		return false
	}
	target, perr := url.Parse(e.url)
	if perr != nil {
		return false
	}
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Set(headerForwarded, "1")
		},
		Transport:     s.forwarder,
		FlushInterval: -1, // progress streams pass through as they come
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) {
			writeError(w, e.apiError)
		},
	}
	s.metrics.forwarded.Inc()
	p.ServeHTTP(w, r)
	return true
}

// forwardTransport reaches the other replicas' app APIs. With TLS every
// replica serves the same certificate (one Secret), which is what the
// other end must present: pod addresses are not in its names.
func forwardTransport(cert []byte) http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if cert == nil {
		return t
	}
	t.TLSClientConfig = &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by the pinning below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || !bytes.Equal(raw[0], cert) {
				return errors.New("the other replica does not present this app API's certificate")
			}
			return nil
		},
	}
	return t
}
