package toolservers

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// IdempotencyKeyMeta is the params._meta key under which agenthelm sends a
// call's idempotency key upstream.
const IdempotencyKeyMeta = "io.agenthelm/idempotency-key"

// Names are the example servers New and Start know, in the order of the
// demo's saga.
var Names = []string{"hotel", "payments", "email"}

// version is what the servers report in serverInfo.
const version = "1.0.0"

// Server is one example tool server.
type Server interface {
	// Name is the server's name: one of Names.
	Name() string
	// MCPServer returns the MCP server that exposes the tools. Serve it over
	// any mcp-go transport (Start uses streamable HTTP).
	MCPServer() *server.MCPServer
}

var (
	_ Server = (*Hotel)(nil)
	_ Server = (*Payments)(nil)
	_ Server = (*Email)(nil)
)

// Options configure an example server. The zero value serves a working
// server on a free loopback port.
type Options struct {
	// Addr is the address Start listens on ("host:port"). Empty means
	// 127.0.0.1:0: a free port on loopback.
	Addr string
	// FailSend makes every send_email fail with "mailbox unavailable"
	// (email only). False: only addresses at BounceDomain fail.
	FailSend bool
	// Logger receives the HTTP server's logs. Nil discards them.
	Logger *slog.Logger
}

// New returns the example server called name (one of Names).
func New(name string, opts Options) (Server, error) {
	switch name {
	case "hotel":
		return NewHotel(), nil
	case "payments":
		return NewPayments(), nil
	case "email":
		return NewEmail(opts.FailSend), nil
	}
	return nil, fmt.Errorf("unknown example server %q: want one of %s", name, strings.Join(Names, ", "))
}

// annotations states a tool's behaviour. These servers change only their
// own in-memory state, so only send_email reaches an open world.
func annotations(title string, readOnly, destructive, idempotent, openWorld bool) mcp.ToolOption {
	return mcp.WithToolAnnotation(mcp.ToolAnnotation{
		Title:           title,
		ReadOnlyHint:    mcp.ToBoolPtr(readOnly),
		DestructiveHint: mcp.ToBoolPtr(destructive),
		IdempotentHint:  mcp.ToBoolPtr(idempotent),
		OpenWorldHint:   mcp.ToBoolPtr(openWorld),
	})
}

// structured returns v both as structuredContent and as its JSON text, so
// that clients reading either see the same thing.
func structured(v any) *mcp.CallToolResult {
	b, err := json.Marshal(v)
	if err != nil {
		return mcp.NewToolResultErrorf("encode result: %v", err)
	}
	return mcp.NewToolResultStructured(v, string(b))
}

// idempotencyKey returns the call's idempotency key, or "".
func idempotencyKey(req mcp.CallToolRequest) string {
	if req.Params.Meta == nil {
		return ""
	}
	k, _ := req.Params.Meta.AdditionalFields[IdempotencyKeyMeta].(string)
	return k
}
