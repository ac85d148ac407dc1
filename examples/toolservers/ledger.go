package toolservers

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// ledger remembers the outcome of every mutating call made with an
// idempotency key, so that a retry with the same key gets the same answer
// and has no second effect. Only successful results are remembered: a tool
// error means nothing happened, so a retry runs again.
type ledger struct {
	entries map[string]ledgerEntry
}

type ledgerEntry struct {
	tool   string
	args   string // the arguments as canonical JSON (sorted keys)
	result *mcp.CallToolResult
}

// mutating wraps a tool handler that changes state. The handler runs with
// mu held, so calls of one server are serialized and a key is looked up
// and recorded atomically with the effect.
func mutating(mu *sync.Mutex, l *ledger, tool string, h server.ToolHandlerFunc) server.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		mu.Lock()
		defer mu.Unlock()
		key := idempotencyKey(req)
		if key == "" {
			return h(ctx, req)
		}
		args, err := json.Marshal(req.GetArguments())
		if err != nil {
			return mcp.NewToolResultErrorf("encode arguments: %v", err), nil
		}
		if e, ok := l.entries[key]; ok {
			if e.tool != tool || e.args != string(args) {
				return mcp.NewToolResultErrorf(
					"idempotency key %q was already used for a different call (%s %s)", key, e.tool, e.args), nil
			}
			replay := *e.result
			return &replay, nil
		}
		res, err := h(ctx, req)
		if err != nil || res == nil || res.IsError {
			return res, err
		}
		if l.entries == nil {
			l.entries = map[string]ledgerEntry{}
		}
		stored := *res
		l.entries[key] = ledgerEntry{tool: tool, args: string(args), result: &stored}
		return res, nil
	}
}
