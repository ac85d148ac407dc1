package telemetry

import (
	"context"
	"encoding/json"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/agenthelm/agenthelm/config"
	"github.com/agenthelm/agenthelm/toolcall"
)

// BenchmarkServerInterceptor measures one tool call through
// ServerInterceptor and a fake engine that forwards through a CLIENT span
// (InjectMeta included): with no decorator at all (bare), with exporter
// none (no-op tracing, Prometheus metrics), and with OTLP/HTTP export to an
// in-process receiver (every call sampled). The otlp runs report their cost
// relative to none as x-none.
//
//	go test -run '^$' -bench ServerInterceptor -benchmem ./telemetry/
func BenchmarkServerInterceptor(b *testing.B) {
	const params = `{"name":"create_entities","arguments":{"entities":[{"name":"ann","entityType":"person","observations":["likes tea"]}]},` +
		`"_meta":{"progressToken":1,"traceparent":"` + agentTP + `"}}`
	run := func(b *testing.B, si toolcall.Interceptor) float64 {
		call := testCall(params)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := si.InterceptToolCall(ctx, call, okForward); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		return float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	}
	setup := func(b *testing.B, cfg config.Telemetry) *Tracer {
		p, err := Setup(context.Background(), cfg, Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = p.Shutdown(context.Background()) })
		return p.Tracer()
	}

	b.Run("bare", func(b *testing.B) {
		run(b, engineForwarding(nil, ""))
	})
	var noneNs float64
	b.Run("none", func(b *testing.B) {
		tr := setup(b, config.Telemetry{Exporter: config.ExporterNone, SampleRatio: 1})
		noneNs = run(b, ServerInterceptor(engineForwarding(tr, ""), tr))
	})
	for _, capture := range []bool{false, true} {
		name := "otlp"
		if capture {
			name = "otlp+capture"
		}
		b.Run(name, func(b *testing.B) {
			rcv := newReceiver(b)
			tr := setup(b, config.Telemetry{Exporter: config.ExporterOTLP, OTLPProtocol: config.ProtocolHTTP,
				OTLPEndpoint: rcv.srv.URL, SampleRatio: 1, CaptureArguments: capture})
			ns := run(b, ServerInterceptor(engineForwarding(tr, ""), tr))
			if noneNs > 0 {
				b.ReportMetric(ns/noneNs, "x-none")
			}
		})
	}
}

// BenchmarkInjectMeta measures writing the trace context into params._meta
// (most of it is jsonrpc.SetMember re-reading params).
func BenchmarkInjectMeta(b *testing.B) {
	ctx := trace.ContextWithSpanContext(context.Background(), SpanContextFromTraceparent(agentTP))
	for _, tc := range []struct{ name, params string }{
		{"no-meta", `{"name":"create_entities","arguments":{"entities":[{"name":"ann","entityType":"person","observations":["likes tea"]}]}}`},
		{"meta", `{"name":"create_entities","arguments":{"entities":[{"name":"ann","entityType":"person","observations":["likes tea"]}]},"_meta":{"progressToken":1,"traceparent":"` + agentTP + `"}}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			params := json.RawMessage(tc.params)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				_ = InjectMeta(ctx, params)
			}
		})
	}
}
