// Package httptool is the HTTP tool proxy: the front door for agents that
// call plain REST tool APIs. An agent sends http://<listen.http>/<upstream>/<path>
// and the request goes to the upstream's base URL joined with <path>.
//
// A request that a route declares a tool call becomes a toolcall.Call and
// goes through the same toolcall.Interceptor as MCP calls (saga, policy,
// approvals, journal, compensation, telemetry); nothing of that is written
// here. Unrouted GET, HEAD and OPTIONS requests are forwarded as they are;
// any other unrouted method is refused, so that no write bypasses policy.
// Paths are never normalized: policy, the journal and the upstream see the
// path exactly as the agent sent it. Agents' credentials are never passed
// on (the upstream's configured headers carry the API's), requests from
// other hosts are refused (DNS rebinding), and agenthelm's own answers are
// RFC 9457 problems. Proxy.Invoke sends the compensating requests the
// engine builds from routes' compensate blocks.
//
// It must not import engine, policy or journal.
//
//	p, err := httptool.New(httptool.Options{Upstreams: ups, Routes: routes, Interceptor: ic})
//	go p.Serve(ln)
//	defer p.Close(ctx)
package httptool
