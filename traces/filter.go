package traces

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agenthelm/agenthelm/journal"
	"github.com/agenthelm/agenthelm/saga"
)

// Filter selects records. Zero fields do not filter.
type Filter struct {
	// Status keeps records whose Status (success, failed, denied, running)
	// or exact Outcome (tool_error, timeout, compensated, ...) is this.
	Status string
	// Tool keeps records whose ToolName is this.
	Tool string
	// Upstream keeps records whose Upstream is this.
	Upstream string
	// Kind keeps calls or compensations.
	Kind string
	// Saga keeps the records of one saga.
	Saga string
	// Since keeps records that started at or after it.
	Since time.Time
	// Limit is the most records returned; 0 means all.
	Limit int
}

// outcomes are the exact outcomes a Status filter accepts besides the
// record statuses.
var outcomes = []string{
	string(saga.InFlight), string(saga.NotSent), string(saga.Succeeded), string(saga.ToolError),
	string(saga.ProtocolError), string(saga.HTTPStatus), string(saga.Timeout), string(saga.Cancelled),
	string(saga.InDoubt), string(saga.Denied), string(saga.InputRequired),
	string(saga.CompDone), string(saga.CompFailed), string(saga.CompNeedsHuman),
	string(saga.CompIrreversible), string(saga.CompResolved), string(saga.CompSkipped),
}

// Validate reports a Status or Kind that no record can have.
func (f Filter) Validate() error {
	if f.Status != "" && !slices.Contains(Statuses, f.Status) && !slices.Contains(outcomes, f.Status) {
		return fmt.Errorf("status %q: want one of %s, or an exact outcome (%s)",
			f.Status, strings.Join(Statuses, ", "), strings.Join(outcomes, ", "))
	}
	if f.Kind != "" && f.Kind != KindCall && f.Kind != KindCompensation {
		return fmt.Errorf("kind %q: want %s or %s", f.Kind, KindCall, KindCompensation)
	}
	if f.Limit < 0 {
		return errors.New("limit: want a whole number")
	}
	return nil
}

// Match reports whether r passes the filter (Limit aside).
func (f Filter) Match(r Record) bool {
	switch {
	case f.Status != "" && r.Status != f.Status && r.Outcome != f.Status:
		return false
	case f.Tool != "" && r.ToolName != f.Tool:
		return false
	case f.Upstream != "" && r.Upstream != f.Upstream:
		return false
	case f.Kind != "" && r.Kind != f.Kind:
		return false
	case f.Saga != "" && r.Saga != f.Saga:
		return false
	case !f.Since.IsZero() && (r.Started.IsZero() || r.Started.Before(f.Since)):
		return false
	}
	return true
}

// Apply returns the records that match, in Sort order, at most Limit.
func (f Filter) Apply(recs []Record) []Record {
	var out []Record
	for _, r := range recs {
		if f.Match(r) {
			out = append(out, r)
		}
	}
	Sort(out)
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out
}

// ParseSince reads a --since value: a duration back from now ("90s",
// "15m", "1h", "2h30m", "7d"), a time ("2026-11-27T08:15:00Z", with any
// offset) or a date ("2026-11-27", midnight UTC).
func ParseSince(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.ParseFloat(days, 64); err == nil && n >= 0 {
			return now.Add(-time.Duration(n * 24 * float64(time.Hour))), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("since %q: want a positive duration", s)
		}
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("since %q: want a duration (30m, 1h, 7d), a time (2026-11-27T08:15:00Z) or a date (2026-11-27)", s)
}

// Query encodes f as the admin API's query parameters (GET /v1/traces).
func (f Filter) Query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"status": f.Status, "tool": f.Tool, "upstream": f.Upstream, "kind": f.Kind, "saga": f.Saga} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return q
}

// ParseQuery decodes the admin API's query parameters into a filter and
// validates it. since may be anything ParseSince reads.
func ParseQuery(q url.Values, now time.Time) (Filter, error) {
	f := Filter{Status: q.Get("status"), Tool: q.Get("tool"), Upstream: q.Get("upstream"), Kind: q.Get("kind"), Saga: q.Get("saga")}
	if v := q.Get("since"); v != "" {
		t, err := ParseSince(v, now)
		if err != nil {
			return f, err
		}
		f.Since = t
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return f, errors.New("limit: want a whole number")
		}
		f.Limit = n
	}
	return f, f.Validate()
}

func isNotFound(err error) bool { return errors.Is(err, journal.ErrNotFound) }
