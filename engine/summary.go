package engine

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
	"github.com/agenthelm/agenthelm/saga"
	"github.com/agenthelm/agenthelm/toolcall"
)

// Rollback is what the agent (and a person reading its transcript) is told
// about an unwound saga, under _meta["io.agenthelm/rollback"].
type Rollback struct {
	Saga   string         `json:"saga"`
	Status saga.Status    `json:"status"`
	Reason string         `json:"reason,omitempty"`
	Steps  []RollbackStep `json:"steps"`
	Text   string         `json:"text"`
}

// RollbackStep says what happened to one step.
type RollbackStep struct {
	Step        int             `json:"step"`
	Upstream    string          `json:"upstream"`
	Tool        string          `json:"tool"`
	Outcome     saga.StepStatus `json:"outcome"`
	Undo        string          `json:"undo"` // compensated, irreversible, needs_human, failed, skipped, resolved, not_needed
	Compensator string          `json:"compensator,omitempty"`
	Error       string          `json:"error,omitempty"`
}

func summarize(s *saga.Saga) Rollback {
	r := Rollback{Saga: s.ID, Status: s.Status, Reason: s.AbortReason}
	var undone, notUndone []string
	for i := len(s.Steps) - 1; i >= 0; i-- {
		st := s.Steps[i]
		rs := RollbackStep{Step: st.N, Upstream: st.Upstream, Tool: st.Tool, Outcome: st.Status, Error: st.Comp.LastError}
		if st.Compensator != nil {
			rs.Compensator = st.Compensator.Tool
		}
		switch st.Comp.Status {
		case saga.CompNone:
			rs.Undo = "not_needed"
		case saga.CompRunning:
			rs.Undo = "in_progress"
		default:
			rs.Undo = string(st.Comp.Status)
		}
		r.Steps = append(r.Steps, rs)
		switch st.Comp.Status {
		case saga.CompDone:
			undone = append(undone, fmt.Sprintf("step %d %s (undone by %s)", st.N, st.Tool, rs.Compensator))
		case saga.CompNone, saga.CompResolved:
		default:
			why := string(st.Comp.Status)
			if st.Comp.LastError != "" {
				why += ": " + st.Comp.LastError
			}
			notUndone = append(notUndone, fmt.Sprintf("step %d %s (%s)", st.N, st.Tool, why))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "agenthelm rolled back saga %s (%s)", s.ID, s.Status)
	if s.AbortReason != "" {
		fmt.Fprintf(&b, " because %s", s.AbortReason)
	}
	b.WriteString(".")
	if len(undone) > 0 {
		fmt.Fprintf(&b, " Undone, in reverse order: %s.", strings.Join(undone, "; "))
	}
	if len(notUndone) > 0 {
		fmt.Fprintf(&b, " NOT undone: %s.", strings.Join(notUndone, "; "))
	}
	if len(undone) == 0 && len(notUndone) == 0 {
		b.WriteString(" No earlier step needed undoing.")
	}
	r.Text = b.String()
	return r
}

// withRollback adds the rollback summary to the answer of the call that
// failed: a tool error result gets a text item and _meta; a JSON-RPC error
// gets the summary in its data; a transport failure becomes a JSON-RPC
// error that carries both.
func withRollback(res toolcall.Result, ferr error, r Rollback) toolcall.Result {
	rb, _ := jsonrpc.Marshal(r)
	switch {
	case ferr != nil:
		data, _ := jsonrpc.SetMember(nil, MetaRollback, rb)
		return toolcall.Result{Error: &jsonrpc.Error{Code: -32001, Message: ferr.Error() + ". " + r.Text, Data: data}}
	case res.Error != nil:
		e := *res.Error
		if len(e.Data) == 0 || e.Data[0] == '{' {
			if d, err := jsonrpc.SetMember(e.Data, MetaRollback, rb); err == nil {
				e.Data = d
			}
		}
		e.Message += ". " + r.Text
		return toolcall.Result{Error: &e}
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(res.Result, &obj); err != nil {
		return res
	}
	var content []json.RawMessage
	_ = json.Unmarshal(obj["content"], &content)
	item, _ := jsonrpc.Marshal(map[string]string{"type": "text", "text": r.Text})
	content = append(content, item)
	obj["content"], _ = jsonrpc.Marshal(content)
	meta, _ := jsonrpc.SetMember(obj["_meta"], MetaRollback, rb)
	obj["_meta"] = meta
	out, err := jsonrpc.Marshal(obj)
	if err != nil {
		return res
	}
	return toolcall.Result{Result: out}
}

// resultText returns the text items of a tool result, for error messages.
func resultText(result json.RawMessage) string {
	var r struct {
		Content []struct {
			Type, Text string
		} `json:"content"`
	}
	_ = json.Unmarshal(result, &r)
	var parts []string
	for _, c := range r.Content {
		if c.Type == "text" {
			parts = append(parts, c.Text)
		}
	}
	s := strings.Join(parts, " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
