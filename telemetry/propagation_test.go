package telemetry

import (
	"context"
	"encoding/json"
	"testing"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"
)

func spanCtx(t *testing.T, tp, state string) context.Context {
	t.Helper()
	sc := SpanContextFromTraceparent(tp)
	if !sc.IsValid() {
		t.Fatalf("SpanContextFromTraceparent(%q) is invalid", tp)
	}
	if state != "" {
		ts, err := trace.ParseTraceState(state)
		if err != nil {
			t.Fatal(err)
		}
		sc = sc.WithTraceState(ts)
	}
	return trace.ContextWithSpanContext(context.Background(), sc)
}

func TestInjectMeta(t *testing.T) {
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	ctx := spanCtx(t, tp, "")
	tests := []struct {
		name, in, want string
	}{
		// Members keep their bytes; jsonrpc.SetMember trims the padding
		// inside the braces of an object it appends to.
		{"no _meta: appended, other bytes kept",
			`{ "name": "t",  "arguments": {"b": 1.50, "a": "\u00e9"} }`,
			`{"name": "t",  "arguments": {"b": 1.50, "a": "\u00e9"},"_meta":{"traceparent":"` + tp + `"}}`},
		{"_meta with other keys: member added",
			`{"name":"t","_meta":{ "progressToken": 7, "io.agenthelm/saga": "s-1" },"arguments":{}}`,
			`{"name":"t","_meta":{"progressToken": 7, "io.agenthelm/saga": "s-1","traceparent":"` + tp + `"},"arguments":{}}`},
		{"agent's traceparent replaced in place",
			`{"name":"t","_meta":{"traceparent":"00-11111111111111111111111111111111-2222222222222222-01", "x":1}}`,
			`{"name":"t","_meta":{"traceparent":"` + tp + `", "x":1}}`},
		{"empty _meta", `{"name":"t","_meta":{}}`, `{"name":"t","_meta":{"traceparent":"` + tp + `"}}`},
		{"null params", `null`, `{"_meta":{"traceparent":"` + tp + `"}}`},
		{"not an object: unchanged", `[1,2]`, `[1,2]`},
		{"_meta not an object: unchanged", `{"name":"t","_meta":5}`, `{"name":"t","_meta":5}`},
		{"ambiguous _meta: unchanged", `{"_meta":{},"_META":{}}`, `{"_meta":{},"_META":{}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(InjectMeta(ctx, json.RawMessage(tt.in)))
			if got != tt.want {
				t.Errorf("InjectMeta(%s)\n got %s\nwant %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestInjectMetaTracestateAndBaggage(t *testing.T) {
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	ctx := spanCtx(t, tp, "vendor=abc")
	m, _ := baggage.NewMember("user", "ann")
	b, _ := baggage.New(m)
	ctx = baggage.ContextWithBaggage(ctx, b)

	got := string(InjectMeta(ctx, json.RawMessage(`{"name":"t"}`)))
	want := `{"name":"t","_meta":{"traceparent":"` + tp + `","tracestate":"vendor=abc","baggage":"user=ann"}}`
	if got != want {
		t.Errorf("InjectMeta\n got %s\nwant %s", got, want)
	}
	// The agent's own baggage is left as it was.
	in := `{"name":"t","_meta":{"baggage":"user=bob"}}`
	got = string(InjectMeta(ctx, json.RawMessage(in)))
	want = `{"name":"t","_meta":{"baggage":"user=bob","traceparent":"` + tp + `","tracestate":"vendor=abc"}}`
	if got != want {
		t.Errorf("InjectMeta(%s)\n got %s\nwant %s", in, got, want)
	}
}

func TestInjectMetaWithoutSpan(t *testing.T) {
	in := json.RawMessage(`{"name":"t"}`)
	out := InjectMeta(context.Background(), in)
	if &out[0] != &in[0] {
		t.Errorf("InjectMeta without a span context changed params: %s", out)
	}
}

func TestTraceparentRoundTrip(t *testing.T) {
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	if got := Traceparent(spanCtx(t, tp, "")); got != tp {
		t.Errorf("Traceparent = %q, want %q", got, tp)
	}
	if got := Traceparent(context.Background()); got != "" {
		t.Errorf("Traceparent without a span = %q, want empty", got)
	}
	for _, bad := range []string{"", "garbage", "00-00000000000000000000000000000000-b7ad6b7169203331-01"} {
		if sc := SpanContextFromTraceparent(bad); sc.IsValid() {
			t.Errorf("SpanContextFromTraceparent(%q) is valid", bad)
		}
	}
}
