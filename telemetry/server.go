package telemetry

import (
	"context"
	"encoding/json"
	"net"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/agenthelm/agenthelm/toolcall"
)

// ServerInterceptor decorates next (the saga engine) with the SERVER span
// "tools/call {tool}" of every call an agent makes, and with the call
// metrics (mcp.server.operation.duration, agenthelm.tool.calls).
//
// The span continues the agent's trace from params._meta (traceparent,
// tracestate, baggage) or, failing that, from the call's Traceparent and
// Tracestate headers. It is in the context next receives, so the engine's
// spans (StartInternal, StartClient, StartCompensation) are its children.
// Its attributes follow the MCP semantic conventions: mcp.method.name,
// gen_ai.tool.name, gen_ai.operation.name=execute_tool, jsonrpc.request.id,
// mcp.protocol.version, mcp.session.id, network.transport, client.address,
// error.type and, when t captures arguments, gen_ai.tool.call.arguments and
// gen_ai.tool.call.result, redacted. The status is ERROR iff error.type is
// set.
//
// A nil t returns next; a nil next means toolcall.Passthrough.
func ServerInterceptor(next toolcall.Interceptor, t *Tracer) toolcall.Interceptor {
	if next == nil {
		next = toolcall.Passthrough{}
	}
	if t == nil {
		return next
	}
	return &serverInterceptor{next: next, t: t}
}

type serverInterceptor struct {
	next toolcall.Interceptor
	t    *Tracer
}

var _ toolcall.Interceptor = (*serverInterceptor)(nil)

// callLabels are the metric attributes of one agent call.
type callLabels struct {
	tool, upstream  string
	transport       attribute.KeyValue
	protocolVersion string
	errorType       string
	rpcCode         string
}

func (s *serverInterceptor) InterceptToolCall(ctx context.Context, call *toolcall.Call, forward toolcall.Forward) (toolcall.Result, error) {
	t := s.t
	start := time.Now()
	st := &callState{}
	ctx = context.WithValue(ctx, callStateKey{}, st)
	labels := callLabels{
		tool:            call.Tool,
		upstream:        call.Upstream,
		transport:       transportAttr(call.Transport.Protocol),
		protocolVersion: call.Transport.ProtocolVersion,
	}

	span := noopSpan
	if t.tracing {
		ctx = extractCall(ctx, call)
		ctx, span = t.tracer.Start(ctx, spanToolsCallPrefix+call.Tool,
			trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(serverAttrs(call, labels.transport)...))
		if t.capture && call.Arguments != nil && span.IsRecording() {
			span.SetAttributes(keyToolArgs.String(t.attrJSON(call.ArgsMember(), call.Arguments)))
		}
	}

	res, err := s.next.InterceptToolCall(ctx, call, forward)

	labels.errorType, labels.rpcCode = classify(res, err)
	if span.IsRecording() {
		t.setError(span, labels.errorType, labels.rpcCode, res, err)
		if t.capture && res.Result != nil {
			span.SetAttributes(keyToolResult.String(t.attrJSON(call.ResultMember(), res.Result)))
		}
	}
	span.End()
	outcome, _ := st.outcome.Load().(Outcome)
	if outcome == "" {
		outcome = outcomeOf(labels.errorType, res, err)
	}
	t.metrics.serverOperation(ctx, labels, time.Since(start), outcome)
	return res, err
}

// serverAttrs are a call's SERVER span attributes known before it runs.
func serverAttrs(call *toolcall.Call, transport attribute.KeyValue) []attribute.KeyValue {
	tr := call.Transport
	attrs := make([]attribute.KeyValue, 0, 12)
	attrs = append(attrs, attrToolsCall, keyToolName.String(call.Tool), attrExecuteTool, UpstreamKey.String(call.Upstream))
	if id := requestID(call.RequestID); id != "" {
		attrs = append(attrs, keyRequestID.String(id))
	}
	if tr.ProtocolVersion != "" {
		attrs = append(attrs, keyMCPProtocol.String(tr.ProtocolVersion))
	}
	if tr.SessionID != "" {
		attrs = append(attrs, keyMCPSession.String(tr.SessionID))
	}
	if transport.Valid() {
		attrs = append(attrs, transport)
	}
	if tr.Protocol != "" && tr.Protocol != "stdio" {
		attrs = append(attrs, keyNetProtocol.String("http"))
	}
	if tr.Kind == "http" {
		if tr.Method != "" {
			attrs = append(attrs, keyHTTPMethod.String(tr.Method))
		}
		if tr.Path != "" {
			attrs = append(attrs, keyURLPath.String(tr.Path))
		}
	}
	if tr.RemoteAddr != "" {
		if host, port, err := net.SplitHostPort(tr.RemoteAddr); err == nil {
			attrs = append(attrs, keyClientAddress.String(host))
			if p, err := strconv.Atoi(port); err == nil {
				attrs = append(attrs, keyClientPort.Int(p))
			}
		} else {
			attrs = append(attrs, keyClientAddress.String(tr.RemoteAddr))
		}
	}
	return attrs
}

// transportAttr maps toolcall.Transport.Protocol to network.transport:
// pipe for stdio, tcp for the HTTP-based transports.
func transportAttr(protocol string) attribute.KeyValue {
	switch protocol {
	case "stdio":
		return attrTransportPipe
	case "":
		return attribute.KeyValue{}
	}
	return attrTransportTCP
}

// requestID renders a JSON-RPC id for jsonrpc.request.id: a string's
// value, a number's text.
func requestID(id json.RawMessage) string {
	if len(id) == 0 || string(id) == "null" {
		return ""
	}
	if id[0] == '"' {
		var s string
		if json.Unmarshal(id, &s) == nil {
			return s
		}
	}
	return string(id)
}
