package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/otafleet/otafleet/internal/lab"
	"github.com/otafleet/otafleet/internal/plugin"
)

// listing is one `kubectl ota devices` run over a whole fleet.
type listing struct {
	what       string
	rows       int64
	first, all time.Duration // to the first row, to the end
	err        error
}

// pageAll runs `kubectl ota devices` as a user would (the plugin's command,
// its default page size, a kubeconfig of the bench's API server) over the
// product's inventory and over the batch's tasks, and times them.
func pageAll(b *testing.B, l *lab.Lab, ns, product, batch string) []listing {
	kubeconfig := filepath.Join(b.TempDir(), "kubeconfig")
	must(b, l.ControlPlane.WriteKubeconfig(kubeconfig))
	var out []listing
	for _, args := range [][]string{{"--product", product}, {"--batch", batch}} {
		out = append(out, list(append([]string{"devices", "--kubeconfig", kubeconfig, "-n", ns}, args...)))
	}
	return out
}

func list(args []string) listing {
	w := &rowCounter{start: time.Now()}
	cmd := plugin.NewRootCommand(genericiooptions.IOStreams{In: bytes.NewReader(nil), Out: w, ErrOut: io.Discard})
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	l := listing{what: fmt.Sprint(args[len(args)-2:]), rows: max(w.lines.Load()-1, 0), all: time.Since(w.start), err: err}
	if f := w.first.Load(); f > 0 {
		l.first = time.Duration(f)
	}
	return l
}

// rowCounter counts the lines written (the header and one per device) and
// notes when the first one came.
type rowCounter struct {
	start time.Time
	first atomic.Int64 // ns after start
	lines atomic.Int64
}

func (w *rowCounter) Write(p []byte) (int, error) {
	w.first.CompareAndSwap(0, int64(time.Since(w.start)))
	w.lines.Add(int64(bytes.Count(p, []byte{'\n'})))
	return len(p), nil
}
