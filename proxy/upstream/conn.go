package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
)

// Errors a Conn reports. Callers match them with errors.Is.
var (
	// ErrClosed: the connection was closed by agenthelm.
	ErrClosed = errors.New("upstream connection closed")
	// ErrExited: a stdio server process exited.
	ErrExited = errors.New("upstream process exited")
	// ErrSessionExpired: an HTTP server answered 404 for our session id.
	ErrSessionExpired = errors.New("upstream session expired")
	// ErrStreamBroken: a response stream ended before carrying the response.
	ErrStreamBroken = errors.New("upstream response stream ended before the response")
	// ErrDisconnected: the shared stream of a legacy HTTP+SSE upstream
	// ended; the session is gone with it.
	ErrDisconnected = errors.New("upstream stream disconnected")
)

// Handler receives what an upstream sends. Its methods are called from the
// Conn's reader goroutines, possibly concurrently for an HTTP upstream (one
// goroutine per open response stream); frames of one stream arrive in order.
// Handlers must not block for long.
type Handler interface {
	// HandleUpstream is called for every frame the server sends. related is
	// the id of the request whose response stream carried the frame, or nil
	// for frames from a shared channel (stdio, the GET stream, legacy SSE).
	HandleUpstream(msg *jsonrpc.Message, related json.RawMessage)
	// RequestFailed reports that a request passed to Send will get no
	// response from the server (HTTP error status, broken stream, abandoned
	// stream, connection gone). err wraps one of the sentinel errors where
	// one applies, context.Canceled when Send's ctx abandoned the request,
	// and is a *StatusError for an HTTP error status.
	//
	// Every request Send accepted (returned nil for) ends in exactly one
	// response frame or one RequestFailed, and all of them happen before
	// ConnClosed. A request Send returned an error for gets neither.
	RequestFailed(id json.RawMessage, err error)
	// ConnClosed is called once when the connection is gone for good: the
	// process exited, the session expired, or Close was called. No Handler
	// method is called after it.
	ConnClosed(err error)
}

// SendOptions carries per-message transport details.
type SendOptions struct {
	// Header holds MCP headers from the agent's HTTP request to pass on to
	// an HTTP upstream (MCP-Protocol-Version, Mcp-Method, Mcp-Name,
	// Mcp-Param-*). Ignored by stdio. Never credentials.
	Header http.Header
}

// Conn is one logical MCP connection to an upstream server.
type Conn interface {
	// Send delivers one frame (request, notification or response). For a
	// request, Send returns once the frame is handed to the server (for
	// HTTP, once the request is written: servers may hold the response
	// headers until the tool produces its first message); the response, or
	// RequestFailed, comes to the Handler. Send never calls the Handler
	// itself. For a notification or response over HTTP, Send returns once
	// the server accepted it (2xx) and returns a *StatusError otherwise.
	// Cancelling ctx after Send returned abandons a request's response
	// stream, which in protocol 2026-07-28 cancels the request; for stdio it
	// does nothing (send notifications/cancelled instead).
	// Errors: ErrClosed, ErrExited, ErrSessionExpired, or a transport error.
	Send(ctx context.Context, msg *jsonrpc.Message, opts SendOptions) error
	// Close ends the connection: for stdio it closes stdin, waits briefly,
	// then kills the process group; for HTTP it sends DELETE for a session.
	// It is idempotent and waits for the Conn's goroutines.
	Close(ctx context.Context) error
	// Done is closed when the connection is gone.
	Done() <-chan struct{}
	// Err says why the connection is gone (nil while it is open).
	Err() error
}
