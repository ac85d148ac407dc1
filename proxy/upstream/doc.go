// Package upstream connects agenthelm to real MCP servers: stdio child
// processes (stdio.go), streamable HTTP endpoints of both protocol eras
// (streamable.go) and legacy HTTP+SSE endpoints (sse.go). Dial picks one
// from a Spec. EventReader and EventWriter (ssereader.go) parse and write
// server-sent events for these clients and for the front doors.
//
// A Conn relays whole JSON-RPC frames byte for byte; it never decodes params
// or results into typed structs. It reports every frame the server sends to
// a Handler, tagged with the request whose response stream carried it, so
// the front door can deliver progress, log messages and server-to-client
// requests on the agent's matching stream.
//
// It must not import the saga engine, policy or journal packages.
//
//	conn, err := upstream.Dial(ctx, spec, handler, logger)
//	err = conn.Send(ctx, msg, upstream.SendOptions{})
//	... handler.HandleUpstream(frame, related) for everything that comes back ...
//	conn.Close(ctx)
package upstream
