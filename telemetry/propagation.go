package telemetry

import (
	"context"
	"encoding/json"
	"net/http"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
	"github.com/agenthelm/agenthelm/toolcall"
)

// Trace context keys in params._meta and HTTP headers (W3C Trace Context
// and Baggage; MCP puts them unprefixed in _meta).
const (
	metaTraceparent = "traceparent"
	metaTracestate  = "tracestate"
	metaBaggage     = "baggage"
)

var (
	traceContext = propagation.TraceContext{}
	baggageProp  = propagation.Baggage{}
)

// metaCarrier reads trace context from the raw params._meta object.
type metaCarrier []byte

func (c metaCarrier) Get(key string) string {
	v, found, _ := objectMember(c, key)
	if !found {
		return ""
	}
	s, _ := jsonString(v)
	return s
}

func (c metaCarrier) Set(key, value string) {}
func (c metaCarrier) Keys() []string        { return nil }

// headerCarrier reads trace context from a call's selected headers, whose
// keys are in canonical form.
type headerCarrier map[string]string

func (c headerCarrier) Get(key string) string { return c[http.CanonicalHeaderKey(key)] }
func (c headerCarrier) Set(key, value string) {}
func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// extractCall returns ctx continuing the trace the agent sent: from
// params._meta (traceparent, tracestate, baggage) when it holds a valid
// traceparent, else from the call's Traceparent/Tracestate/Baggage
// headers, else ctx unchanged.
func extractCall(ctx context.Context, call *toolcall.Call) context.Context {
	if meta, found, _ := objectMember(call.Params, "_meta"); found {
		if out, ok := extractFrom(ctx, metaCarrier(meta)); ok {
			return out
		}
	}
	if len(call.Transport.Headers) > 0 {
		if out, ok := extractFrom(ctx, headerCarrier(call.Transport.Headers)); ok {
			return out
		}
	}
	return ctx
}

func extractFrom(ctx context.Context, c propagation.TextMapCarrier) (context.Context, bool) {
	if c.Get(metaTraceparent) == "" {
		return ctx, false
	}
	out := traceContext.Extract(context.Background(), c)
	sc := trace.SpanContextFromContext(out)
	if !sc.IsValid() {
		return ctx, false
	}
	ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
	return baggageProp.Extract(ctx, c), true
}

// InjectMeta returns params with the trace context of ctx written into
// params._meta: traceparent and tracestate (when there is one), and
// baggage when ctx carries baggage and _meta has none. Every other byte of
// params is kept (jsonrpc.SetMember). Without a valid span context in ctx,
// or when params is not a JSON object, params is returned unchanged (the
// agent's own _meta, if any, still goes upstream as it was).
func InjectMeta(ctx context.Context, params json.RawMessage) json.RawMessage {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return params
	}
	c := propagation.MapCarrier{}
	traceContext.Inject(ctx, c)
	tp := c[metaTraceparent]
	if tp == "" {
		return params
	}
	// Read with the scanner (cheap); SetMember below refuses an ambiguous
	// or non-object params as jsonrpc.Lookup would.
	meta, _, ambiguous := objectMember(params, "_meta")
	if ambiguous {
		return params
	}
	if len(meta) > 0 && meta[0] != '{' {
		return params // _meta is not an object: leave it to the upstream to refuse
	}
	set := func(key, value string) bool {
		v, _ := jsonrpc.Marshal(value)
		m, err := jsonrpc.SetMember(meta, key, v)
		if err != nil {
			return false
		}
		meta = m
		return true
	}
	if !set(metaTraceparent, tp) {
		return params
	}
	if ts := c[metaTracestate]; ts != "" {
		set(metaTracestate, ts)
	}
	if b := baggage.FromContext(ctx); b.Len() > 0 {
		if _, found, ambiguous := objectMember(meta, metaBaggage); !found && !ambiguous {
			set(metaBaggage, b.String())
		}
	}
	out, err := jsonrpc.SetMember(params, "_meta", meta)
	if err != nil {
		return params
	}
	return out
}

// Traceparent returns the W3C traceparent of the span in ctx ("" if none),
// for the journal to keep with a step so that a compensation after a
// restart can still link to it.
func Traceparent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	traceContext.Inject(ctx, c)
	return c[metaTraceparent]
}

// SpanContextFromTraceparent parses a W3C traceparent; the result is
// invalid (IsValid false) if s is not one.
func SpanContextFromTraceparent(s string) trace.SpanContext {
	if s == "" {
		return trace.SpanContext{}
	}
	ctx := traceContext.Extract(context.Background(), propagation.MapCarrier{metaTraceparent: s})
	return trace.SpanContextFromContext(ctx)
}
