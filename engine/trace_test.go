package engine_test

import (
	"strings"
	"testing"

	"github.com/agenthelm/agenthelm/engine"
	"github.com/agenthelm/agenthelm/proxy"
	"github.com/agenthelm/agenthelm/saga"
	"github.com/agenthelm/agenthelm/telemetry"
	"github.com/agenthelm/agenthelm/toolcall"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestSpansOfCommittedAndUnwoundSagas runs the real engine behind the
// telemetry decorator with an in-memory exporter and checks the span tree
// of CORRECTNESS rules 25-27.
func TestSpansOfCommittedAndUnwoundSagas(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tr := telemetry.NewTracer(tp, telemetry.TracerOptions{})

	s := newStack(t, "", engine.Options{Tracer: tr, ControlTools: true,
		Rules: rules{"create": {Compensate: &saga.Compensator{Tool: "delete", Args: "{name: .args.name}"}}, "fail": {Irreversible: true}}},
		proxy.Options{Interceptor: wrapper(func(next toolcall.Interceptor) toolcall.Interceptor { return telemetry.ServerInterceptor(next, tr) })})

	// A saga that commits, then one that unwinds.
	s.call(t, "create", map[string]any{"name": "a"})
	s.call(t, engine.ToolCommit, nil)
	s.call(t, "create", map[string]any{"name": "b"})
	s.call(t, "fail", nil)

	spans := rec.Ended()
	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, sp := range spans {
		byName[sp.Name()] = append(byName[sp.Name()], sp)
	}
	attr := func(sp sdktrace.ReadOnlySpan, key string) string {
		for _, kv := range sp.Attributes() {
			if string(kv.Key) == key {
				return kv.Value.String()
			}
		}
		return ""
	}
	var server, client []sdktrace.ReadOnlySpan
	for _, sp := range byName["tools/call create"] {
		switch sp.SpanKind() {
		case trace.SpanKindServer:
			server = append(server, sp)
		case trace.SpanKindClient:
			client = append(client, sp)
		}
	}
	if len(server) != 2 || len(client) != 2 {
		t.Fatalf("tools/call create spans: %d server, %d client; want 2 and 2 (all: %v)", len(server), len(client), names(spans))
	}
	for _, sp := range server {
		for key, want := range map[string]string{"mcp.method.name": "tools/call", "gen_ai.tool.name": "create", "gen_ai.operation.name": "execute_tool"} {
			if got := attr(sp, key); got != want {
				t.Errorf("server span %s = %q, want %q", key, got, want)
			}
		}
		if attr(sp, "agenthelm.saga.id") == "" || attr(sp, "agenthelm.saga.step") == "" || attr(sp, "mcp.session.id") == "" {
			t.Errorf("server span lacks saga id, step or session: %v", sp.Attributes())
		}
	}
	// The CLIENT span of each call is a child of its SERVER span.
	for i := range client {
		if client[i].Parent().SpanID() != server[i].SpanContext().SpanID() {
			t.Errorf("client span %d is not a child of its server span", i)
		}
	}
	failSrv := byName["tools/call fail"]
	if len(failSrv) == 0 || attr(failSrv[0], "error.type") != "tool_error" {
		t.Errorf("the failing call's span lacks error.type=tool_error")
	}
	if len(byName["journal.commit"]) == 0 || len(byName["saga.unwind"]) == 0 {
		t.Errorf("no journal.commit or saga.unwind spans: %v", names(spans))
	}
	// The compensation links to the span of the step it undoes: the
	// second create's server span.
	comp := byName["compensate create"]
	if len(comp) != 1 {
		t.Fatalf("compensate spans = %d, want 1 (all: %v)", len(comp), names(spans))
	}
	links := comp[0].Links()
	if len(links) != 1 || links[0].SpanContext.SpanID() != server[1].SpanContext().SpanID() {
		t.Errorf("compensation links %v, want the span of step 1 of the unwound saga", links)
	}
	if attr(comp[0], "agenthelm.saga.id") != attr(server[1], "agenthelm.saga.id") {
		t.Errorf("compensation span saga %q, want %q", attr(comp[0], "agenthelm.saga.id"), attr(server[1], "agenthelm.saga.id"))
	}
}

func names(spans []sdktrace.ReadOnlySpan) string {
	var n []string
	for _, sp := range spans {
		n = append(n, sp.Name())
	}
	return strings.Join(n, ", ")
}
