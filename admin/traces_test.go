package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/journal"
	"github.com/agenthelm/agenthelm/saga"
	"github.com/agenthelm/agenthelm/traces"
)

// journalSaga appends a saga's events and head to the journal as the
// engine does.
func journalSaga(t *testing.T, j *journal.Journal, id string, evs []saga.Event) {
	t.Helper()
	s := saga.New(id)
	b := journal.Batch{Saga: id}
	for _, ev := range evs {
		if err := s.Apply(ev); err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(ev)
		b.Events = append(b.Events, journal.Event{Kind: string(ev.Kind), Time: ev.Time, Body: body})
	}
	b.Head = &journal.Head{Saga: id, Status: string(s.Status), Created: s.Created, Updated: s.Updated, Steps: len(s.Steps), Terminal: s.Status.Terminal()}
	if _, err := j.Append(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

// TestTraceRoutes mounts the trace routes as the sidecar does and reads a
// real journal through them.
func TestTraceRoutes(t *testing.T) {
	ctx := context.Background()
	j, err := journal.Open(ctx, journal.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close(ctx)
	t0 := time.Now().UTC().Add(-30 * time.Minute)
	journalSaga(t, j, "s-a", []saga.Event{
		{Kind: saga.EvOpened, Time: t0},
		{Kind: saga.EvIntent, Time: t0, Step: 1, Intent: &saga.Intent{Upstream: "payments", Tool: "charge_customer",
			Compensator: &saga.Compensator{Tool: "refund_customer"}}},
		{Kind: saga.EvOutcome, Time: t0.Add(time.Millisecond), Step: 1, Status: "succeeded"},
		{Kind: saga.EvIntent, Time: t0.Add(2 * time.Millisecond), Step: 2, Intent: &saga.Intent{Upstream: "email", Tool: "send_email"}},
		{Kind: saga.EvOutcome, Time: t0.Add(3 * time.Millisecond), Step: 2, Status: "timeout"},
		{Kind: saga.EvAborted, Time: t0.Add(4 * time.Millisecond), Step: 2, Reason: "timeout"},
		{Kind: saga.EvCompStarted, Time: t0.Add(5 * time.Millisecond), Step: 1, Attempt: 1},
		{Kind: saga.EvCompFinished, Time: t0.Add(7 * time.Millisecond), Step: 1, Attempt: 1, OK: true},
		{Kind: saga.EvStatus, Time: t0.Add(8 * time.Millisecond), Status: "compensated"},
	})
	srv := httptest.NewServer(Handler(Options{Token: "tok", Journal: j, Extra: TraceRoutes(j)}))
	defer srv.Close()

	get := func(path, token string, out any) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if out != nil && resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
		}
		return resp.StatusCode
	}

	if code := get("/v1/traces", "", nil); code != http.StatusUnauthorized {
		t.Errorf("GET /v1/traces without a token = %d, want 401", code)
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{"s-a#1.undo", "s-a#2", "s-a#1"}},
		{"?status=failed", []string{"s-a#2"}},
		{"?status=timeout&tool=send_email", []string{"s-a#2"}},
		{"?tool=refund_customer", []string{"s-a#1.undo"}},
		{"?since=1h&limit=1", []string{"s-a#1.undo"}},
		{"?since=10m", nil},
		{"?kind=call&upstream=payments", []string{"s-a#1"}},
	} {
		var recs []traces.Record
		if code := get("/v1/traces"+tc.query, "tok", &recs); code != http.StatusOK {
			t.Errorf("GET /v1/traces%s = %d", tc.query, code)
			continue
		}
		var ids []string
		for _, r := range recs {
			ids = append(ids, r.ID)
		}
		if !slices.Equal(ids, tc.want) {
			t.Errorf("GET /v1/traces%s = %q, want %q", tc.query, ids, tc.want)
		}
	}
	for _, bad := range []string{"?status=nope", "?since=soon", "?limit=-2", "?kind=x"} {
		if code := get("/v1/traces"+bad, "tok", nil); code != http.StatusBadRequest {
			t.Errorf("GET /v1/traces%s = %d, want 400", bad, code)
		}
	}
	if code := get("/v1/traces?saga=nope", "tok", nil); code != http.StatusNotFound {
		t.Errorf("GET /v1/traces?saga=nope = %d, want 404", code)
	}

	for _, id := range []string{"s-a", "s-a#2", "s-a#1.undo"} {
		var h traces.History
		if code := get("/v1/traces/"+url.PathEscape(id), "tok", &h); code != http.StatusOK {
			t.Errorf("GET /v1/traces/%s = %d", id, code)
			continue
		}
		if h.Saga == nil || h.Saga.ID != "s-a" || h.Saga.Status != saga.Compensated || len(h.Records) != 3 || len(h.Events) != 9 {
			t.Errorf("GET /v1/traces/%s = saga %+v, %d records, %d events", id, h.Saga, len(h.Records), len(h.Events))
		}
	}
	if code := get("/v1/traces/nope", "tok", nil); code != http.StatusNotFound {
		t.Errorf("GET /v1/traces/nope = %d, want 404", code)
	}
}
