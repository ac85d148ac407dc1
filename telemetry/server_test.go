package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
	"github.com/agenthelm/agenthelm/toolcall"
)

// fakeEngine is the interceptor ServerInterceptor wraps in tests.
type fakeEngine struct {
	intercept func(ctx context.Context, call *toolcall.Call, forward toolcall.Forward) (toolcall.Result, error)
}

func (f fakeEngine) InterceptToolCall(ctx context.Context, call *toolcall.Call, forward toolcall.Forward) (toolcall.Result, error) {
	return f.intercept(ctx, call, forward)
}

const (
	agentTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	agentSpanID  = "00f067aa0ba902b7"
	agentTP      = "00-" + agentTraceID + "-" + agentSpanID + "-01"
)

// newTestTracer returns a Tracer recording every span in memory.
func newTestTracer(t testing.TB, opts TracerOptions) (*Tracer, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return NewTracer(tp, opts), exp
}

func testCall(params string) *toolcall.Call {
	var p struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	}
	_ = json.Unmarshal([]byte(params), &p)
	return &toolcall.Call{
		Upstream:  "memory",
		Tool:      p.Name,
		Arguments: p.Arguments,
		Params:    json.RawMessage(params),
		RequestID: json.RawMessage(`7`),
		Transport: toolcall.Transport{
			Kind: "mcp", Protocol: "streamable-http", ProtocolVersion: "2025-11-25",
			SessionID: "sess-1", RemoteAddr: "127.0.0.1:50123", Method: "tools/call",
		},
	}
}

func okResult() toolcall.Result {
	return toolcall.Result{Result: json.RawMessage(`{"content":[{"type":"text","text":"done"}]}`)}
}

func spanNamed(t *testing.T, spans tracetest.SpanStubs, name string, kind trace.SpanKind) tracetest.SpanStub {
	t.Helper()
	for _, s := range spans {
		if s.Name == name && s.SpanKind == kind {
			return s
		}
	}
	var names []string
	for _, s := range spans {
		names = append(names, s.Name+"/"+s.SpanKind.String())
	}
	t.Fatalf("no %s span %q among %v", kind, name, names)
	return tracetest.SpanStub{}
}

func attrs(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value
	}
	return m
}

func wantAttrs(t *testing.T, s tracetest.SpanStub, want map[string]any) {
	t.Helper()
	got := attrs(s)
	for k, w := range want {
		v, ok := got[attribute.Key(k)]
		if w == nil {
			if ok {
				t.Errorf("span %q: attribute %s = %v, want it absent", s.Name, k, v.String())
			}
			continue
		}
		if !ok {
			t.Errorf("span %q: attribute %s missing (want %v)", s.Name, k, w)
			continue
		}
		if v.AsInterface() != w {
			t.Errorf("span %q: attribute %s = %#v, want %#v", s.Name, k, v.AsInterface(), w)
		}
	}
}

// TestServerInterceptorSpans runs a call through ServerInterceptor and a
// fake engine that starts the spans the real one will, and checks names,
// kinds, parents, links and attributes.
func TestServerInterceptorSpans(t *testing.T) {
	tr, exp := newTestTracer(t, TracerOptions{})
	stepTP := "00-" + agentTraceID + "-1111111111111111-01" // an earlier step's span
	var forwarded, compParams json.RawMessage
	var engineCtxSpan trace.SpanContext

	engine := fakeEngine{intercept: func(ctx context.Context, call *toolcall.Call, forward toolcall.Forward) (toolcall.Result, error) {
		engineCtxSpan = trace.SpanContextFromContext(ctx)
		ctx = WithSaga(ctx, "s-1", 2)

		pctx, span := tr.StartInternal(ctx, SpanPolicyEvaluate, PolicyResultKey.String("allow"))
		_ = pctx
		tr.End(span, nil)

		_, span = tr.StartInternal(ctx, SpanJournalCommit)
		tr.End(span, errors.New("disk full"))

		res, err := tr.WrapForward(call.Upstream, call.Tool, forward)(ctx, call.Params)
		if err != nil {
			return res, err
		}

		cctx, cspan := tr.StartCompensation(ctx, "s-1", 1, "create_entities", SpanContextFromTraceparent(stepTP),
			CompensationAttemptKey.Int(1))
		_, _ = tr.WrapForward("memory", "delete_entities", func(ctx context.Context, params json.RawMessage) (toolcall.Result, error) {
			compParams = params
			return okResult(), nil
		})(cctx, json.RawMessage(`{"name":"delete_entities","arguments":{}}`))
		tr.End(cspan, nil)
		return res, nil
	}}
	forward := func(ctx context.Context, params json.RawMessage) (toolcall.Result, error) {
		forwarded = params
		return okResult(), nil
	}

	params := `{"name":"add_observations","arguments":{"password":"p"},"_meta":{"traceparent":"` + agentTP + `","progressToken":3}}`
	call := testCall(params)
	res, err := ServerInterceptor(engine, tr).InterceptToolCall(context.Background(), call, forward)
	if err != nil || res.Result == nil {
		t.Fatalf("InterceptToolCall = %v, %v", res, err)
	}

	spans := exp.GetSpans()
	if len(spans) != 6 {
		t.Fatalf("got %d spans, want 6: %v", len(spans), spans)
	}
	server := spanNamed(t, spans, "tools/call add_observations", trace.SpanKindServer)
	policy := spanNamed(t, spans, SpanPolicyEvaluate, trace.SpanKindInternal)
	commit := spanNamed(t, spans, SpanJournalCommit, trace.SpanKindInternal)
	client := spanNamed(t, spans, "tools/call add_observations", trace.SpanKindClient)
	comp := spanNamed(t, spans, "compensate create_entities", trace.SpanKindInternal)
	compClient := spanNamed(t, spans, "tools/call delete_entities", trace.SpanKindClient)

	// The server span continues the agent's trace from _meta.
	if got := server.SpanContext.TraceID().String(); got != agentTraceID {
		t.Errorf("server span trace id = %s, want the agent's %s", got, agentTraceID)
	}
	if got := server.Parent.SpanID().String(); got != agentSpanID || !server.Parent.IsRemote() {
		t.Errorf("server span parent = %s (remote %v), want remote %s", got, server.Parent.IsRemote(), agentSpanID)
	}
	if !engineCtxSpan.Equal(server.SpanContext) {
		t.Errorf("engine saw span %v in ctx, want the server span %v", engineCtxSpan, server.SpanContext)
	}
	wantAttrs(t, server, map[string]any{
		"mcp.method.name":            "tools/call",
		"gen_ai.tool.name":           "add_observations",
		"gen_ai.operation.name":      "execute_tool",
		"jsonrpc.request.id":         "7",
		"mcp.protocol.version":       "2025-11-25",
		"mcp.session.id":             "sess-1",
		"network.transport":          "tcp",
		"network.protocol.name":      "http",
		"client.address":             "127.0.0.1",
		"client.port":                int64(50123),
		"agenthelm.upstream":         "memory",
		"agenthelm.saga.id":          "s-1",
		"agenthelm.saga.step":        int64(2),
		"error.type":                 nil,
		"gen_ai.tool.call.arguments": nil, // capture is off
		"gen_ai.tool.call.result":    nil,
	})
	if server.Status.Code != codes.Unset {
		t.Errorf("server span status = %v, want unset", server.Status)
	}

	// Children of the server span carry the saga.
	for _, s := range []tracetest.SpanStub{policy, commit, client, comp} {
		if s.Parent.SpanID() != server.SpanContext.SpanID() {
			t.Errorf("span %q parent = %s, want the server span %s", s.Name, s.Parent.SpanID(), server.SpanContext.SpanID())
		}
	}
	wantAttrs(t, policy, map[string]any{"agenthelm.saga.id": "s-1", "agenthelm.saga.step": int64(2), "agenthelm.policy.result": "allow"})
	wantAttrs(t, commit, map[string]any{"agenthelm.saga.id": "s-1", "error.type": "*errors.errorString"})
	if commit.Status.Code != codes.Error || commit.Status.Description != "disk full" {
		t.Errorf("journal span status = %v, want error disk full", commit.Status)
	}
	wantAttrs(t, client, map[string]any{
		"mcp.method.name": "tools/call", "gen_ai.tool.name": "add_observations", "gen_ai.operation.name": "execute_tool",
		"agenthelm.upstream": "memory", "agenthelm.saga.id": "s-1", "agenthelm.saga.step": int64(2), "error.type": nil,
	})

	// The upstream got the client span's trace context in _meta, and every
	// other byte of params as the agent sent them.
	wantTP := "00-" + agentTraceID + "-" + client.SpanContext.SpanID().String() + "-01"
	wantParams := strings.Replace(params, agentTP, wantTP, 1)
	if string(forwarded) != wantParams {
		t.Errorf("forwarded params\n got %s\nwant %s", forwarded, wantParams)
	}

	// The compensation links to the step it undoes and carries its step.
	if len(comp.Links) != 1 || comp.Links[0].SpanContext.SpanID().String() != "1111111111111111" {
		t.Errorf("compensation links = %v, want the step's span 1111111111111111", comp.Links)
	}
	wantAttrs(t, comp, map[string]any{"agenthelm.saga.id": "s-1", "agenthelm.saga.step": int64(1),
		"gen_ai.tool.name": "create_entities", "agenthelm.compensation.attempt": int64(1)})
	if compClient.Parent.SpanID() != comp.SpanContext.SpanID() {
		t.Errorf("compensating call's parent = %s, want the compensation span", compClient.Parent.SpanID())
	}
	wantAttrs(t, compClient, map[string]any{"agenthelm.saga.id": "s-1", "agenthelm.saga.step": int64(1), "gen_ai.tool.name": "delete_entities"})
	var meta struct {
		Meta struct {
			Traceparent string `json:"traceparent"`
		} `json:"_meta"`
	}
	if err := json.Unmarshal(compParams, &meta); err != nil || !strings.Contains(meta.Meta.Traceparent, compClient.SpanContext.SpanID().String()) {
		t.Errorf("compensation params %s: traceparent does not name the compensating call's span", compParams)
	}
}

type codedError struct{}

func (codedError) Error() string { return "boom" }

func TestServerInterceptorErrors(t *testing.T) {
	tests := []struct {
		name       string
		res        toolcall.Result
		err        error
		errType    string
		rpcCode    string
		wantStatus codes.Code
	}{
		{"success", okResult(), nil, "", "", codes.Unset},
		{"tool error", toolcall.Result{Result: json.RawMessage(`{"content":[],"isError":true}`)}, nil, "tool_error", "", codes.Error},
		{"json-rpc error", toolcall.Result{Error: &jsonrpc.Error{Code: -32602, Message: "bad params"}}, nil, "-32602", "-32602", codes.Error},
		{"json-rpc error as Go error", toolcall.Result{}, &jsonrpc.Error{Code: -32603, Message: "x"}, "-32603", "-32603", codes.Error},
		{"timeout", toolcall.Result{}, toolcall.ErrTimeout, "timeout", "", codes.Error},
		{"not sent", toolcall.Result{}, errors.Join(errors.New("dial"), toolcall.ErrNotSent), "not_sent", "", codes.Error},
		{"cancelled", toolcall.Result{}, context.Canceled, "cancelled", "", codes.Error},
		{"other Go error", toolcall.Result{}, &fs.PathError{Op: "open", Path: "x", Err: fs.ErrNotExist}, "*fs.PathError", "", codes.Error},
		{"named Go error type", toolcall.Result{}, codedError{}, "github.com/agenthelm/agenthelm/telemetry.codedError", "", codes.Error},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, exp := newTestTracer(t, TracerOptions{})
			engine := fakeEngine{intercept: func(ctx context.Context, call *toolcall.Call, forward toolcall.Forward) (toolcall.Result, error) {
				return tt.res, tt.err
			}}
			_, _ = ServerInterceptor(engine, tr).InterceptToolCall(context.Background(), testCall(`{"name":"t"}`), nil)
			spans := exp.GetSpans()
			if len(spans) != 1 {
				t.Fatalf("got %d spans, want 1", len(spans))
			}
			s := spans[0]
			want := map[string]any{"error.type": nil, "rpc.response.status_code": nil}
			if tt.errType != "" {
				want["error.type"] = tt.errType
			}
			if tt.rpcCode != "" {
				want["rpc.response.status_code"] = tt.rpcCode
			}
			wantAttrs(t, s, want)
			if s.Status.Code != tt.wantStatus {
				t.Errorf("status = %v, want %v", s.Status.Code, tt.wantStatus)
			}
			if s.Parent.IsValid() {
				t.Errorf("a call without trace context has parent %v, want a root span", s.Parent)
			}
		})
	}
}

func TestServerInterceptorCapture(t *testing.T) {
	tr, exp := newTestTracer(t, TracerOptions{CaptureArguments: true, Redactor: mustRedactor(t, []string{"password"}, ".result.content[0].text")})
	engine := fakeEngine{intercept: func(ctx context.Context, call *toolcall.Call, forward toolcall.Forward) (toolcall.Result, error) {
		return toolcall.Result{Result: json.RawMessage(`{"content":[{"type":"text","text":"secret output"}],"card":"4111 1111 1111 1111"}`)}, nil
	}}
	call := testCall(`{"name":"login","arguments":{"user":"bob","password":"hunter2"}}`)
	_, _ = ServerInterceptor(engine, tr).InterceptToolCall(context.Background(), call, nil)
	s := exp.GetSpans()[0]
	wantAttrs(t, s, map[string]any{
		"gen_ai.tool.call.arguments": `{"user":"bob","password":"[REDACTED]"}`,
		"gen_ai.tool.call.result":    `{"content":[{"type":"text","text":"[REDACTED]"}],"card":"[REDACTED]"}`,
	})
}

func TestServerInterceptorTraceContextSources(t *testing.T) {
	headerTP := "00-11111111111111111111111111111111-2222222222222222-01"
	tests := []struct {
		name      string
		params    string
		headers   map[string]string
		wantTrace string
		wantBag   string
	}{
		{"_meta", `{"name":"t","_meta":{"traceparent":"` + agentTP + `","tracestate":"k=v","baggage":"user=ann"}}`, nil, agentTraceID, "ann"},
		{"_meta wins over headers", `{"name":"t","_meta":{"traceparent":"` + agentTP + `"}}`, map[string]string{"Traceparent": headerTP}, agentTraceID, ""},
		{"headers when _meta has none", `{"name":"t","_meta":{"progressToken":1}}`, map[string]string{"Traceparent": headerTP}, "11111111111111111111111111111111", ""},
		{"headers when _meta's is invalid", `{"name":"t","_meta":{"traceparent":"garbage"}}`, map[string]string{"Traceparent": headerTP}, "11111111111111111111111111111111", ""},
		{"none", `{"name":"t"}`, nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, exp := newTestTracer(t, TracerOptions{})
			var bag string
			engine := fakeEngine{intercept: func(ctx context.Context, call *toolcall.Call, forward toolcall.Forward) (toolcall.Result, error) {
				bag = baggage.FromContext(ctx).Member("user").Value()
				return okResult(), nil
			}}
			call := testCall(tt.params)
			call.Transport.Headers = tt.headers
			_, _ = ServerInterceptor(engine, tr).InterceptToolCall(context.Background(), call, nil)
			s := exp.GetSpans()[0]
			if tt.wantTrace == "" {
				if s.Parent.IsValid() {
					t.Errorf("parent = %v, want none", s.Parent)
				}
			} else if got := s.SpanContext.TraceID().String(); got != tt.wantTrace || !s.Parent.IsRemote() {
				t.Errorf("trace id = %s (remote parent %v), want %s", got, s.Parent.IsRemote(), tt.wantTrace)
			}
			if bag != tt.wantBag {
				t.Errorf("baggage user = %q, want %q", bag, tt.wantBag)
			}
			if tt.name == "_meta" && s.SpanContext.TraceState().Get("k") != "v" {
				t.Errorf("tracestate = %q, want k=v", s.SpanContext.TraceState().String())
			}
		})
	}
}

func TestServerInterceptorStdioTransport(t *testing.T) {
	tr, exp := newTestTracer(t, TracerOptions{})
	call := testCall(`{"name":"t"}`)
	call.Transport = toolcall.Transport{Kind: "mcp", Protocol: "stdio", Method: "tools/call"}
	call.RequestID = json.RawMessage(`"abc"`)
	engine := fakeEngine{intercept: func(ctx context.Context, call *toolcall.Call, forward toolcall.Forward) (toolcall.Result, error) {
		return okResult(), nil
	}}
	_, _ = ServerInterceptor(engine, tr).InterceptToolCall(context.Background(), call, nil)
	wantAttrs(t, exp.GetSpans()[0], map[string]any{
		"network.transport": "pipe", "network.protocol.name": nil, "mcp.session.id": nil,
		"mcp.protocol.version": nil, "jsonrpc.request.id": "abc", "client.address": nil,
	})
}

func TestNilAndNoopTracer(t *testing.T) {
	engine := fakeEngine{intercept: func(ctx context.Context, call *toolcall.Call, forward toolcall.Forward) (toolcall.Result, error) {
		return forward(ctx, call.Params)
	}}
	if got, ok := ServerInterceptor(engine, nil).(fakeEngine); !ok || got.intercept == nil {
		t.Errorf("ServerInterceptor(next, nil) = %T, want next", got)
	}
	var nilTracer *Tracer
	ctx, span := nilTracer.StartClient(context.Background(), "u", "t")
	nilTracer.EndClient(ctx, span, toolcall.Result{}, nil)
	_, span = nilTracer.StartInternal(ctx, SpanPolicyEvaluate)
	nilTracer.End(span, errors.New("x"))
	_, span = nilTracer.StartCompensation(ctx, "s", 1, "t", trace.SpanContext{})
	nilTracer.End(span, nil)
	if nilTracer.Metrics() != nil {
		t.Error("nil Tracer has metrics")
	}

	// A no-op provider: the call goes through and nothing is injected.
	noopTr := NewTracer(nil, TracerOptions{})
	params := `{"name":"t","_meta":{"traceparent":"` + agentTP + `"}}`
	var sent json.RawMessage
	fwd := func(ctx context.Context, p json.RawMessage) (toolcall.Result, error) {
		sent = p
		return okResult(), nil
	}
	wrapped := fakeEngine{intercept: func(ctx context.Context, call *toolcall.Call, forward toolcall.Forward) (toolcall.Result, error) {
		return noopTr.WrapForward(call.Upstream, call.Tool, forward)(ctx, call.Params)
	}}
	if _, err := ServerInterceptor(wrapped, noopTr).InterceptToolCall(context.Background(), testCall(params), fwd); err != nil {
		t.Fatal(err)
	}
	if string(sent) != params {
		t.Errorf("no-op tracer changed params: %s", sent)
	}
}
