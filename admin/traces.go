package admin

import (
	"errors"
	"net/http"
	"time"

	"github.com/agenthelm/agenthelm/journal"
	"github.com/agenthelm/agenthelm/traces"
)

// TraceRoutes returns the trace routes, for Options.Extra (they are then
// behind the token like every other route):
//
//	GET /v1/traces?status=&tool=&upstream=&kind=&saga=&since=&limit=
//	    the matching trace records (traces.Record), newest first; since is a
//	    duration back from now (1h, 7d) or an RFC 3339 time; limit 0 or
//	    absent means all
//	GET /v1/traces/{id}
//	    one saga's history (traces.History: state, records and events); id
//	    is a saga id or a record id ("<saga>#<step>")
//
// Both read the journal directly (sagas are not loaded into the engine).
func TraceRoutes(j traces.Journal) map[string]http.Handler {
	t := traceServer{j: j, now: time.Now}
	return map[string]http.Handler{
		"GET /v1/traces":      http.HandlerFunc(t.list),
		"GET /v1/traces/{id}": http.HandlerFunc(t.show),
	}
}

type traceServer struct {
	j   traces.Journal
	now func() time.Time
}

func (t traceServer) list(w http.ResponseWriter, r *http.Request) {
	f, err := traces.ParseQuery(r.URL.Query(), t.now())
	if err != nil {
		writeJSON(w, http.StatusBadRequest, Error{err.Error()})
		return
	}
	recs, err := traces.Collect(r.Context(), traces.FromJournal(t.j), f)
	switch {
	case errors.Is(err, journal.ErrNotFound):
		writeJSON(w, http.StatusNotFound, Error{err.Error()})
		return
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, Error{err.Error()})
		return
	}
	if recs == nil {
		recs = []traces.Record{}
	}
	writeJSON(w, http.StatusOK, recs)
}

func (t traceServer) show(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	h, err := traces.Load(r.Context(), t.j, id)
	if sagaID, _, ok := traces.ParseID(id); ok && errors.Is(err, journal.ErrNotFound) {
		h, err = traces.Load(r.Context(), t.j, sagaID)
	}
	switch {
	case errors.Is(err, journal.ErrNotFound):
		writeJSON(w, http.StatusNotFound, Error{err.Error()})
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, Error{err.Error()})
	default:
		writeJSON(w, http.StatusOK, h)
	}
}
