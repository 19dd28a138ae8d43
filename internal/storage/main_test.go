package storage

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/otafleet/otafleet/internal/testserver"
)

// server is the real MinIO every integration test in this package uses;
// each test works in its own bucket.
var server *testserver.MinIO

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	server, err = testserver.StartMinIO(context.Background(), testserver.MinIOOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting MinIO:", err)
		return 1
	}
	defer server.Stop()
	return m.Run()
}

var bucketSeq atomic.Int32

// newStore returns a client of the test server and a fresh bucket name.
// publicURL empty means devices reach the same endpoint as the operator.
func newStore(t *testing.T, publicURL string) (*MinIO, string) {
	t.Helper()
	st, err := New(Config{
		Endpoint:  server.Endpoint,
		Insecure:  true,
		PublicURL: publicURL,
		AccessKey: server.AccessKey,
		SecretKey: server.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	bucket := fmt.Sprintf("%s-%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), bucketSeq.Add(1))
	if len(bucket) > 63 {
		bucket = bucket[len(bucket)-63:]
	}
	bucket = strings.Trim(strings.ReplaceAll(bucket, "_", "-"), "-")
	if err := st.EnsureBucket(t.Context(), bucket); err != nil {
		t.Fatal(err)
	}
	return st, bucket
}
