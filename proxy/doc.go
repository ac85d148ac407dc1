// Package proxy is agenthelm's MCP front door: it relays agent sessions to
// upstream MCP servers frame by frame and hands every tools/call to the one
// interception point, toolcall.Interceptor.
//
// Three doors share one Session type: streamable HTTP (net/http, at
// /mcp/<upstream>), legacy HTTP+SSE (/sse/<upstream>) and stdio (the wrap
// command). Everything that is not tools/call passes through untouched, in
// both directions; tools/call is the only method the proxy opens.
//
// Sessions of the stateful protocol era (2025-11-25 and older: initialize,
// Mcp-Session-Id, server-to-client requests) get one upstream connection
// each, so server-to-client requests reach the right agent. Stateless
// requests (2026-07-28) share one connection per upstream, with request ids
// rewritten so that clients cannot collide.
//
// It must not import the saga engine, policy or journal packages: they plug
// in through the Interceptor.
package proxy
