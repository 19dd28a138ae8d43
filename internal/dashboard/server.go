package dashboard

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	otascheme "github.com/otafleet/otafleet/internal/scheme"
)

//go:embed static
var assets embed.FS

// Options configure a dashboard.
type Options struct {
	// Config is the user's REST config: every read and every action goes
	// through it, so the user's RBAC applies.
	Config *rest.Config
	// Namespace is the namespace whose products, firmwares and batches
	// are shown (the plugin's --namespace or the context's).
	Namespace string
	// SyncTimeout bounds the first list of every kind; zero is 30 s.
	SyncTimeout time.Duration
}

// Server is a running dashboard: a watch cache of the namespace and the
// HTTP handlers that read it.
type Server struct {
	ns      string
	client  client.Client // direct, as the user: actions and nothing else
	watch   *watcher
	indexes *indexes
}

// Start starts the watches and returns once the first list of every kind
// arrived; it fails with the API server's refusal when the user may not
// list one of them. The watches stop with ctx.
func Start(ctx context.Context, o Options) (*Server, error) {
	scheme := otascheme.New()
	c, err := client.New(o.Config, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("creating the client: %w", err)
	}
	timeout := o.SyncTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	w, err := startWatcher(ctx, o.Config, scheme, o.Namespace, timeout)
	if err != nil {
		return nil, err
	}
	return &Server{ns: o.Namespace, client: c, watch: w, indexes: newIndexes(w)}, nil
}

// Handler serves the page, its assets and the JSON API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "static")
	mux.Handle("GET /", http.FileServerFS(static))
	mux.HandleFunc("GET /api/products", s.jsonView(func(*http.Request) (any, error) { return s.productsView() }))
	mux.HandleFunc("GET /api/firmwares", s.jsonView(func(*http.Request) (any, error) { return s.firmwaresView() }))
	mux.HandleFunc("GET /api/batches/{name}", s.jsonView(func(r *http.Request) (any, error) { return s.batchView(r.PathValue("name")) }))
	mux.HandleFunc("GET /api/batches/{name}/devices", s.devices)
	mux.HandleFunc("POST /api/batches/{name}/{verb}", s.action)
	mux.HandleFunc("GET /api/events", s.events)
	return guard(mux)
}

// Serve serves the dashboard on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		// Event streams never end on their own; Close ends them.
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
