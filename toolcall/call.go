package toolcall

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
)

// Transport describes how a call reached agenthelm. Policy input, the
// journal and traces are built from it.
type Transport struct {
	// Kind is "mcp" or "http".
	Kind string `json:"kind"`
	// Protocol is the wire transport: "streamable-http", "sse", "stdio" or "http".
	Protocol string `json:"protocol"`
	// ProtocolVersion is the MCP revision the call was made under, when known.
	ProtocolVersion string `json:"protocol_version,omitempty"`
	// SessionID is the agent-facing MCP session, empty for stateless clients.
	SessionID string `json:"session_id,omitempty"`
	// RemoteAddr is the agent's address for network front doors.
	RemoteAddr string `json:"remote_addr,omitempty"`
	// Method is the MCP method ("tools/call") or the HTTP method.
	Method string `json:"method"`
	// Path is the HTTP path for HTTP tool calls.
	Path string `json:"path,omitempty"`
	// Headers holds selected request headers (never credentials).
	Headers map[string]string `json:"headers,omitempty"`
	// Params are an HTTP route's {name} placeholders as they appear in
	// the path (HTTP tool calls only).
	Params map[string]string `json:"params,omitempty"`
	// Query is an HTTP tool call's query string, each name with all its
	// values (HTTP tool calls only).
	Query map[string][]string `json:"query,omitempty"`
}

// ClientInfo is what the agent said about itself (MCP clientInfo).
type ClientInfo struct {
	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
}

// Call is one tool call on its way upstream.
type Call struct {
	// Upstream is the configured name of the server the call goes to.
	Upstream string
	// Tool is the tool's name (params.name).
	Tool string
	// Arguments are params.arguments exactly as the agent sent them (nil if absent).
	Arguments json.RawMessage
	// Params are the request's params exactly as the agent sent them.
	// Forward sends whatever params it is given; an interceptor that adds
	// _meta keys (idempotency key, traceparent) passes its edited copy.
	Params json.RawMessage
	// RequestID is the agent's JSON-RPC id (for traces; the proxy routes on it).
	RequestID json.RawMessage
	// Transport says how the call arrived.
	Transport Transport
	// Client is the agent's self-description when it sent one.
	Client ClientInfo
	// TokenSubject is the agent's identity from its verified bearer token
	// ("" without one, or when no verifier is configured): unlike Client
	// and headers, which the agent asserts, its issuer signed it.
	TokenSubject string

	// Notify sends a notification to the agent on this call's stream
	// (progress while a call is held for approval). It may be nil when the
	// front door cannot deliver one.
	Notify func(ctx context.Context, msg *jsonrpc.Message) error

	// Ask sends a request to the agent's client on this call's stream and
	// waits for its answer (elicitation/create for an approval). It is nil
	// when the client did not declare the elicitation capability (2025-11-25
	// and older sessions) or cannot be reached this way.
	Ask func(ctx context.Context, method string, params json.RawMessage) (Result, error)

	// CanRequestInput: the client speaks MCP 2026-07-28 or later and
	// declared the elicitation capability in this request's _meta, so a
	// tools/call may be answered with resultType "input_required" (an
	// elicitation for the client to fulfil) and will come back as a retry
	// carrying inputResponses and the requestState.
	CanRequestInput bool
}

// ArgsMember and ResultMember name the members of the call document (the
// input of configured redaction paths) that the call's arguments and
// result are: .args and .result for MCP calls, .request and .response for
// HTTP ones.
func (c *Call) ArgsMember() string {
	if c.Transport.Kind == "http" {
		return "request"
	}
	return "args"
}

// ResultMember: see ArgsMember.
func (c *Call) ResultMember() string {
	if c.Transport.Kind == "http" {
		return "response"
	}
	return "result"
}

// Meta returns params._meta, or nil.
func (c *Call) Meta() json.RawMessage { return jsonrpc.Member(c.Params, "_meta") }

// Result is what came back for a forwarded request: either a JSON-RPC result
// (which for tools/call may itself report a tool error with isError) or a
// JSON-RPC error.
type Result struct {
	Result json.RawMessage
	Error  *jsonrpc.Error
}

// IsToolError reports whether a tools/call result says isError: true.
func (r Result) IsToolError() bool {
	if r.Error != nil || r.Result == nil {
		return false
	}
	var v struct {
		IsError bool `json:"isError"`
	}
	_ = json.Unmarshal(r.Result, &v)
	return v.IsError
}

// Forward sends a tools/call with the given params upstream, under the
// agent's request id, and waits for its response. An error means the call's
// fate is unknown or it was never sent (upstream down, stream broken,
// context cancelled); the caller decides which from the error.
type Forward func(ctx context.Context, params json.RawMessage) (Result, error)

// Interceptor sees every tool call. It decides whether and how to forward,
// and may return a result of its own without forwarding (a denial). An error
// is rendered to the agent as a JSON-RPC error naming the upstream.
type Interceptor interface {
	InterceptToolCall(ctx context.Context, call *Call, forward Forward) (Result, error)
}

// Passthrough forwards every call unchanged. It is the interceptor of a proxy
// with no saga engine, policy or telemetry attached.
type Passthrough struct{}

var _ Interceptor = Passthrough{}

// InterceptToolCall forwards the call's params as they are.
func (Passthrough) InterceptToolCall(ctx context.Context, call *Call, forward Forward) (Result, error) {
	return forward(ctx, call.Params)
}

// Errors a Forward may wrap, so that the saga engine can tell what
// happened to a call it did not get an answer for. Any other error means
// the call may have run (in doubt).
var (
	// ErrNotSent: the call provably never reached the upstream (the
	// connection was already gone or refused).
	ErrNotSent = errors.New("call not sent upstream")
	// ErrUnknownUpstream: no upstream of that name is configured.
	ErrUnknownUpstream = errors.New("unknown upstream")
	// ErrTimeout: the upstream showed no sign of life within the call
	// timeout; the call may have run.
	ErrTimeout = errors.New("no answer from the upstream within the call timeout")
	// ErrNotJournaled: the interceptor could not make the call durable in
	// its journal (an intent before sending, or an outcome after), so it
	// refused it or could not confirm it.
	ErrNotJournaled = errors.New("agenthelm could not journal the call")
	// ErrShuttingDown: the interceptor takes no new calls.
	ErrShuttingDown = errors.New("agenthelm is shutting down")
)

// MetaRefused is the _meta key of a result agenthelm gave instead of
// forwarding a call: {"kind": one of the Refused* values, "saga": id,
// "reasons": [..]}. The result is a tool error whose text says the same
// for the model.
const MetaRefused = "io.agenthelm/refused"

// Kinds of refusal (MetaRefused).
const (
	RefusedDenied           = "denied"            // the policy denied it
	RefusedApprovalRejected = "approval_rejected" // a person rejected it, or its approval expired
	RefusedSagaClosed       = "saga_closed"       // its saga is aborting or finished
	RefusedCaptureFailed    = "capture_failed"    // the pre-image capture failed
	RefusedBadRequestState  = "bad_request_state" // a 2026-07-28 retry's requestState did not verify
)
