// Package toolcall holds the one shape in which every front door (MCP over
// streamable HTTP, legacy SSE and stdio; later plain HTTP tool APIs) hands a
// tool call to the rest of agenthelm, and the Interceptor interface through
// which the saga engine, the policy gate and telemetry see every call.
//
// It is the interception point: nothing about sagas, policy or journaling is
// written in a front door. A front door builds a Call, gives it to the
// Interceptor with a way to forward it, and renders what comes back.
//
// It imports only the jsonrpc frame package.
package toolcall
