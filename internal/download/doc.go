// Package download serves firmware images to devices at short signed URLs,
// streaming them from object storage.
//
// Devices built on the vendor's C SDK cannot take S3 pre-signed URLs: they
// ignore URL ports, copy host and path into fixed 256-byte buffers, and
// accept a narrow subset of HTTP (see PROTOCOL.md). The manager signs URLs
// with a Signer; the Server, run as its own stateless Deployment by
// cmd/otafleet-download, checks them with the same secret and streams the
// bytes from the store with minio-go, never holding an image on disk or in
// memory.
//
// # URL format
//
//	http[s]://host/f/<token>/<object key>
//
// The token is 27 base64url characters: a 4-byte big-endian expiry (Unix
// seconds) followed by the first 16 bytes of
// HMAC-SHA256(secret, "otafleet-download-v1\x00" | expiry | key). The domain
// prefix keeps these MACs from ever matching one the same secret makes for
// another purpose. With a 36-byte host and the key "fw/<36-char uid>.bin"
// a URL is 118 bytes, well under the devices' 200.
//
// # Expiry and CDN mode
//
// A URL is valid for at least the signer's ttl. The expiry is rounded up to
// a grid of ttl/4 (whole seconds), so it lasts at most 1.25·ttl, and every
// URL signed for one key within one grid step is byte-identical: a CDN in
// front of the service caches one copy per image and window instead of one
// per device. Server's CacheControl makes that caching explicit
// (Cache-Control: public, max-age up to the token's expiry, so a cached copy
// never outlives its URL); without it responses say no-store.
package download
