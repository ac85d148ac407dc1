package engine

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/agenthelm/agenthelm/saga"
	"github.com/agenthelm/agenthelm/toolcall"
)

// Control tools let the model end or undo its own saga (saga.control_tools).
const (
	ToolCommit   = "agenthelm_commit"
	ToolRollback = "agenthelm_rollback"
)

// ControlTools is the JSON definition of the control tools, for the
// proxy's Options.ExtraTools.
var ControlTools = json.RawMessage(`[
{"name":"agenthelm_commit","description":"Finish the current transaction: every tool call made so far stands and will no longer be undone automatically. Call it when the task succeeded.","inputSchema":{"type":"object","properties":{}},"annotations":{"title":"Commit the transaction","readOnlyHint":false,"destructiveHint":false,"idempotentHint":true,"openWorldHint":false}},
{"name":"agenthelm_rollback","description":"Undo the current transaction: agenthelm runs the compensating action of every tool call made so far, newest first, and reports what it could and could not undo. Call it when the task failed or was a mistake.","inputSchema":{"type":"object","properties":{"reason":{"type":"string","description":"Why the transaction is undone (kept in the journal)."}}},"annotations":{"title":"Roll back the transaction","readOnlyHint":false,"destructiveHint":true,"idempotentHint":true,"openWorldHint":false}}
]`)

// control answers a call to a control tool; it reports false for any
// other tool. Control calls are never forwarded.
func (e *Engine) control(ctx context.Context, call *toolcall.Call) (toolcall.Result, bool) {
	if !e.opts.ControlTools || call.Tool != ToolCommit && call.Tool != ToolRollback {
		return toolcall.Result{}, false
	}
	id := explicitSaga(call)
	if id == "" {
		e.mu.Lock()
		id = e.scopes[e.scopeKey(call)]
		e.mu.Unlock()
	}
	if id == "" {
		return toolText("There is no open transaction: no tool call has been made since the last one ended."), true
	}
	switch call.Tool {
	case ToolCommit:
		s, err := e.Commit(ctx, id, "agent")
		if err != nil {
			return toolError(fmt.Sprintf("agenthelm could not commit saga %s: %v", id, err)), true
		}
		return toolText(fmt.Sprintf("Committed saga %s: its %d steps stand.", s.ID, len(s.Steps))), true
	default:
		var args struct {
			Reason string `json:"reason"`
		}
		_ = json.Unmarshal(call.Arguments, &args)
		reason := "the agent asked to roll back"
		if args.Reason != "" {
			reason += ": " + args.Reason
		}
		s, err := e.Rollback(ctx, id, "agent", reason)
		if err != nil {
			return toolError(fmt.Sprintf("agenthelm could not roll back saga %s: %v", id, err)), true
		}
		base := json.RawMessage(`{"content":[]}`)
		if s.Status != saga.Compensated {
			base = json.RawMessage(`{"content":[],"isError":true}`)
		}
		return withRollback(toolcall.Result{Result: base}, nil, summarize(s)), true
	}
}

func toolText(text string) toolcall.Result {
	return toolcall.Result{Result: json.RawMessage(`{"content":[{"type":"text","text":` + quote(text) + `}]}`)}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
