package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/agenthelm/agenthelm/journal"
	"github.com/agenthelm/agenthelm/saga"
)

// Engine is what the admin API needs from the saga engine.
type Engine interface {
	Load(ctx context.Context, id string) (*saga.Saga, error)
	Rollback(ctx context.Context, id, by, reason string) (*saga.Saga, error)
	Retry(ctx context.Context, id, by string) (*saga.Saga, error)
	Resolve(ctx context.Context, id string, step int, by, note string) (*saga.Saga, error)
}

// Lister lists saga heads without loading their events.
type Lister interface {
	List(ctx context.Context, f journal.Filter) ([]journal.Head, error)
	Healthy() error
}

// Options configure the admin handler.
type Options struct {
	Token   string
	Engine  Engine
	Journal Lister
	Logger  *slog.Logger
	// Extra routes (metrics, approvals) mounted under the same token check
	// unless their pattern is listed in Public.
	Extra  map[string]http.Handler
	Public []string
}

// Handler returns the admin API.
func Handler(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &server{o: o}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.health)
	mux.HandleFunc("GET /readyz", s.health)
	mux.Handle("GET /v1/sagas", s.auth(s.list))
	mux.Handle("GET /v1/sagas/{id}", s.auth(s.show))
	mux.Handle("POST /v1/sagas/{id}/rollback", s.auth(s.rollback))
	mux.Handle("POST /v1/sagas/{id}/retry", s.auth(s.retry))
	mux.Handle("POST /v1/sagas/{id}/resolve", s.auth(s.resolve))
	public := map[string]bool{}
	for _, p := range o.Public {
		public[p] = true
	}
	for pattern, h := range o.Extra {
		if public[pattern] {
			mux.Handle(pattern, h)
		} else {
			mux.Handle(pattern, s.auth(h.ServeHTTP))
		}
	}
	return mux
}

type server struct{ o Options }

// Error is the body of every error answer.
type Error struct {
	Error string `json:"error"`
}

func (s *server) auth(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || s.o.Token == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.o.Token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="agenthelm"`)
			writeJSON(w, http.StatusUnauthorized, Error{"missing or wrong admin token: send Authorization: Bearer <token> (see the admin.token file in the data directory)"})
			return
		}
		h(w, r)
	})
}

func (s *server) health(w http.ResponseWriter, r *http.Request) {
	if s.o.Journal != nil {
		if err := s.o.Journal.Healthy(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unhealthy", "journal": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := journal.Filter{Status: q.Get("status"), Tool: q.Get("tool")}
	if v := q.Get("since"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, Error{"since: " + err.Error()})
			return
		}
		f.Since = time.Now().Add(-d)
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeJSON(w, http.StatusBadRequest, Error{"limit: want a whole number"})
			return
		}
		f.Limit = n
	}
	heads, err := s.o.Journal.List(r.Context(), f)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, Error{err.Error()})
		return
	}
	if heads == nil {
		heads = []journal.Head{}
	}
	writeJSON(w, http.StatusOK, heads)
}

func (s *server) show(w http.ResponseWriter, r *http.Request) {
	sg, err := s.o.Engine.Load(r.Context(), r.PathValue("id"))
	s.answer(w, sg, err)
}

// Action is the body of rollback, retry and resolve requests.
type Action struct {
	By     string `json:"by"`
	Reason string `json:"reason"`
	Step   int    `json:"step"`
}

func (s *server) action(r *http.Request) Action {
	var a Action
	_ = json.NewDecoder(http.MaxBytesReader(nil, r.Body, 64<<10)).Decode(&a)
	if a.By == "" {
		a.By = "operator"
	}
	if !strings.HasPrefix(a.By, "operator") {
		a.By = "operator:" + a.By
	}
	return a
}

func (s *server) rollback(w http.ResponseWriter, r *http.Request) {
	a := s.action(r)
	sg, err := s.o.Engine.Rollback(r.Context(), r.PathValue("id"), a.By, a.Reason)
	s.answer(w, sg, err)
}

func (s *server) retry(w http.ResponseWriter, r *http.Request) {
	a := s.action(r)
	sg, err := s.o.Engine.Retry(r.Context(), r.PathValue("id"), a.By)
	s.answer(w, sg, err)
}

func (s *server) resolve(w http.ResponseWriter, r *http.Request) {
	a := s.action(r)
	sg, err := s.o.Engine.Resolve(r.Context(), r.PathValue("id"), a.Step, a.By, a.Reason)
	s.answer(w, sg, err)
}

func (s *server) answer(w http.ResponseWriter, sg *saga.Saga, err error) {
	switch {
	case errors.Is(err, journal.ErrNotFound):
		writeJSON(w, http.StatusNotFound, Error{err.Error()})
	case err != nil:
		writeJSON(w, http.StatusConflict, Error{err.Error()})
	default:
		writeJSON(w, http.StatusOK, sg)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
