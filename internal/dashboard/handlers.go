package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	otav1 "github.com/otafleet/otafleet/api/v1alpha1"
	"github.com/otafleet/otafleet/internal/steer"
)

// ctxBackground is for reads from the informer cache, which answer from
// memory and never block.
var ctxBackground = context.Background()

const (
	defaultPageSize = 50
	maxPageSize     = 500
)

func (s *Server) jsonView(view func(*http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := view(r)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

type devicesPage struct {
	Total   int                `json:"total"`   // tasks in the batch
	Matched int                `json:"matched"` // tasks matching the query
	Offset  int                `json:"offset"`
	Rows    []otav1.DeviceTask `json:"rows"`
	Gen     uint64             `json:"devicesGen"`
}

// devices serves one page of the batch's device table:
// ?q=<name substring>&state=<STATE>&offset=<n>&limit=<n>.
func (s *Server) devices(w http.ResponseWriter, r *http.Request) {
	q, err := parseQuery(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ix, err := s.indexes.get(s.ns, r.PathValue("name"))
	if err != nil {
		writeError(w, err)
		return
	}
	rows, matched := ix.page(q)
	if rows == nil {
		rows = []otav1.DeviceTask{}
	}
	writeJSON(w, http.StatusOK, devicesPage{Total: len(ix.tasks), Matched: matched, Offset: q.offset, Rows: rows, Gen: ix.gen})
}

func parseQuery(r *http.Request) (query, error) {
	v := r.URL.Query()
	q := query{search: strings.TrimSpace(v.Get("q")), state: otav1.TaskState(strings.ToUpper(v.Get("state"))), limit: defaultPageSize}
	for name, dst := range map[string]*int{"offset": &q.offset, "limit": &q.limit} {
		if s := v.Get(name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				return q, errors.New(name + " must be a non-negative integer")
			}
			*dst = n
		}
	}
	q.limit = min(q.limit, maxPageSize)
	return q, nil
}

// action runs one of the plugin's verbs on a batch as the user. The API
// server's refusal (403 Forbidden without patch rights, 422 from a CEL
// rule) is passed to the page with its status code and message.
func (s *Server) action(w http.ResponseWriter, r *http.Request) {
	name, verb := r.PathValue("name"), r.PathValue("verb")
	ctx := r.Context()
	var msg string
	var err error
	switch verb {
	case "pause":
		msg, err = steer.Pause(ctx, s.client, s.ns, name)
	case "resume":
		msg, err = steer.Resume(ctx, s.client, s.ns, name)
	case "promote":
		msg, err = steer.Promote(ctx, s.client, s.ns, name)
	case "cancel":
		msg, err = steer.Cancel(ctx, s.client, s.ns, name, nil)
	case "retry":
		var nb *otav1.UpgradeBatch
		var n int
		if nb, n, err = steer.Retry(ctx, s.client, s.ns, name); err == nil {
			msg = "upgradebatch/" + nb.Name + " created with " + strconv.Itoa(n) + " devices"
		}
	default:
		http.Error(w, "unknown action "+verb, http.StatusNotFound)
		return
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": msg})
}

// writeError sends the API server's status code and message when there is
// one; other errors are the verbs' own refusals (a finished batch), 409.
func writeError(w http.ResponseWriter, err error) {
	code := http.StatusConflict
	var st apierrors.APIStatus
	if errors.As(err, &st) && st.Status().Code != 0 {
		code = int(st.Status().Code)
	}
	writeJSON(w, code, map[string]any{"error": err.Error(), "code": code})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
