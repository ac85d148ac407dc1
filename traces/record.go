package traces

import (
	"bytes"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/agenthelm/agenthelm/saga"
)

// Record kinds.
const (
	// KindCall is a tool call the agent made: one saga step.
	KindCall = "call"
	// KindCompensation is the call (or calls) agenthelm made to undo a step.
	KindCompensation = "compensation"
)

// Record statuses: the coarse outcome of a row, for filters and counts.
// Outcome keeps the exact status.
const (
	StatusSuccess = "success"
	// StatusFailed: tool_error, protocol_error, http_status, timeout,
	// in_doubt, not_sent or cancelled for a call; failed, stuck at
	// needs_human, skipped or resolved by hand after failed attempts for a
	// compensation.
	StatusFailed = "failed"
	// StatusDenied: refused by policy or approval, never forwarded.
	StatusDenied = "denied"
	// StatusRunning: no outcome yet (a call in flight, a compensation
	// attempt under way).
	StatusRunning = "running"
)

// Statuses are the values of Record.Status.
var Statuses = []string{StatusSuccess, StatusFailed, StatusDenied, StatusRunning}

// Record is one row of the trace: a tool call or a compensation.
type Record struct {
	// ID is "<saga>#<step>" for a call and "<saga>#<step>.undo" for its
	// compensation.
	ID   string `json:"id"`
	Saga string `json:"saga_id"`
	Step int    `json:"step"`
	Kind string `json:"kind"`
	// Upstream and ToolName are the server and tool called: for a
	// compensation, the compensating tool.
	Upstream string `json:"upstream"`
	ToolName string `json:"tool_name"`
	Status   string `json:"status"`
	// Outcome is the exact status: a saga.StepStatus for a call, a
	// saga.CompStatus for a compensation.
	Outcome  string    `json:"outcome"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// DurationMS is Finished - Started in milliseconds; nil while either
	// is unknown.
	DurationMS *float64 `json:"duration_ms,omitempty"`
	// Arguments are the call's arguments as journaled (after redaction);
	// empty for compensations, whose arguments are built when they run.
	Arguments json.RawMessage `json:"arguments,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     string          `json:"error,omitempty"`
	// Decision is the policy's verdict on a call (allow, deny,
	// require_approval); Approval is what became of a call held for a
	// person (pending, approved, rejected, expired) and Approver who
	// decided. All three come from the saga's events: empty when only its
	// state was read, and on compensations.
	Decision string `json:"decision,omitempty"`
	Approval string `json:"approval,omitempty"`
	Approver string `json:"approver,omitempty"`
	// Compensation of a call: the compensating tool ("" if none), where it
	// stands ("" while the saga has not unwound) and how many attempts it
	// took. On a compensation row: the same values as its own.
	CompTool     string `json:"compensation_tool,omitempty"`
	CompStatus   string `json:"compensation_status,omitempty"`
	CompAttempts int    `json:"compensation_attempts,omitempty"`
	SagaStatus   string `json:"saga_status"`
	// IdempotencyKey is what was sent upstream with the call.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// CallID is the record id of step n's call in saga id; CompID that of its
// compensation.
func CallID(sagaID string, n int) string { return sagaID + "#" + strconv.Itoa(n) }

// CompID is the record id of step n's compensation in saga id.
func CompID(sagaID string, n int) string { return CallID(sagaID, n) + ".undo" }

// ParseID splits a record id into its saga id and step. ok is false (and
// sagaID is id) when id does not look like a record id.
func ParseID(id string) (sagaID string, step int, ok bool) {
	i := strings.LastIndexByte(id, '#')
	if i <= 0 {
		return id, 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(id[i+1:], ".undo"))
	if err != nil || n < 1 {
		return id, 0, false
	}
	return id[:i], n, true
}

// callStatus maps a step's exact status to a record status. A status this
// build does not know is reported as itself, never guessed.
func callStatus(s saga.StepStatus) string {
	switch s {
	case saga.Succeeded:
		return StatusSuccess
	case saga.Denied:
		return StatusDenied
	case saga.InFlight:
		return StatusRunning
	case saga.ToolError, saga.ProtocolError, saga.HTTPStatus, saga.Timeout, saga.Cancelled, saga.InDoubt, saga.NotSent, saga.InputRequired:
		return StatusFailed
	}
	return string(s)
}

func compStatus(s saga.CompStatus) string {
	switch s {
	case saga.CompDone:
		return StatusSuccess
	case saga.CompRunning:
		return StatusRunning
	}
	return StatusFailed
}

// compAttempted reports whether a step's compensation was (or is being)
// tried: only then is there a compensation row. Steps that were never
// compensated (irreversible, read-only, not needed) carry their
// compensation status on the call row alone.
func compAttempted(st *saga.Step) bool {
	switch st.Comp.Status {
	case saga.CompRunning, saga.CompDone, saga.CompFailed:
		return true
	}
	return st.Comp.Attempts > 0
}

// FromSaga flattens a saga into its records, in step order, each call
// followed by its compensation. Compensation rows carry no times: the
// folded state does not keep them (Fold and Load add them from events).
func FromSaga(s *saga.Saga) []Record {
	var out []Record
	for _, st := range s.Steps {
		r := Record{
			ID:             CallID(s.ID, st.N),
			Saga:           s.ID,
			Step:           st.N,
			Kind:           KindCall,
			Upstream:       st.Upstream,
			ToolName:       st.Tool,
			Status:         callStatus(st.Status),
			Outcome:        string(st.Status),
			Started:        st.Started,
			Finished:       st.Finished,
			Arguments:      compact(st.Args),
			Result:         compact(st.Result),
			Error:          st.Error,
			CompStatus:     string(st.Comp.Status),
			CompAttempts:   st.Comp.Attempts,
			SagaStatus:     string(s.Status),
			IdempotencyKey: st.IdempotencyKey,
		}
		if r.Error == "" && st.Status == saga.ToolError {
			r.Error = resultText(st.Result)
		}
		if st.Compensator != nil {
			r.CompTool = st.Compensator.Tool
		}
		r.DurationMS = durationMS(r.Started, r.Finished)
		out = append(out, r)
		if !compAttempted(st) {
			continue
		}
		c := Record{
			ID:           CompID(s.ID, st.N),
			Saga:         s.ID,
			Step:         st.N,
			Kind:         KindCompensation,
			Upstream:     st.Upstream,
			ToolName:     r.CompTool,
			Status:       compStatus(st.Comp.Status),
			Outcome:      string(st.Comp.Status),
			Result:       compact(st.Comp.Result),
			Error:        st.Comp.LastError,
			CompTool:     r.CompTool,
			CompStatus:   string(st.Comp.Status),
			CompAttempts: st.Comp.Attempts,
			SagaStatus:   string(s.Status),
		}
		if st.Compensator != nil && st.Compensator.Upstream != "" {
			c.Upstream = st.Compensator.Upstream
		}
		out = append(out, c)
	}
	return out
}

// compact returns raw without insignificant white space, so a record is
// the same whether it was read from the journal or through the admin API
// (which indents its answers).
func compact(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw
	}
	return b.Bytes()
}

// resultText is the text of an MCP tool result's content, for a tool
// error whose message is in the result rather than the journal's error.
func resultText(result json.RawMessage) string {
	var r struct {
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
	}
	if json.Unmarshal(result, &r) != nil {
		return ""
	}
	var parts []string
	for _, c := range r.Content {
		if c.Type == "text" && c.Text != "" {
			parts = append(parts, c.Text)
		}
	}
	return strings.Join(parts, "\n")
}

func durationMS(start, end time.Time) *float64 {
	if start.IsZero() || end.IsZero() {
		return nil
	}
	ms := float64(end.Sub(start).Microseconds()) / 1000
	return &ms
}

// Sort orders records newest Started first; records of one saga keep step
// order (a call before its compensation) when their times tie, and
// records with no time come last.
func Sort(recs []Record) {
	sort.SliceStable(recs, func(i, j int) bool {
		a, b := recs[i], recs[j]
		switch {
		case a.Started.IsZero() != b.Started.IsZero():
			return b.Started.IsZero()
		case !a.Started.Equal(b.Started):
			return a.Started.After(b.Started)
		case a.Saga != b.Saga:
			return a.Saga < b.Saga
		case a.Step != b.Step:
			return a.Step < b.Step
		}
		return a.Kind == KindCall && b.Kind != KindCall
	})
}
