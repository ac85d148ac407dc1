package telemetry

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/agenthelm/agenthelm/config"
	"github.com/agenthelm/agenthelm/toolcall"
)

// scrape fetches /metrics from p and parses it.
func scrape(t *testing.T, p *Providers) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	p.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d: %s", rec.Code, rec.Body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// sample returns the metric of family name whose labels include want.
func sample(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("/metrics has no family %s", name)
	}
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		return m
	}
	t.Fatalf("family %s has no sample with labels %v: %v", name, want, f.GetMetric())
	return nil
}

func setupNone(t *testing.T) *Providers {
	t.Helper()
	p, err := Setup(context.Background(), config.Telemetry{Exporter: config.ExporterNone, SampleRatio: 1}, Options{ServiceVersion: "test"})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return p
}

// engineForwarding is a fake engine that forwards through a CLIENT span.
func engineForwarding(tr *Tracer, outcome Outcome) fakeEngine {
	return fakeEngine{intercept: func(ctx context.Context, call *toolcall.Call, forward toolcall.Forward) (toolcall.Result, error) {
		if outcome != "" {
			SetOutcome(ctx, outcome)
		}
		return tr.WrapForward(call.Upstream, call.Tool, forward)(ctx, call.Params)
	}}
}

func okForward(ctx context.Context, params json.RawMessage) (toolcall.Result, error) {
	return okResult(), nil
}

func TestMetricsHandler(t *testing.T) {
	p := setupNone(t)
	tr, m := p.Tracer(), p.Metrics()
	ctx := context.Background()

	call := testCall(`{"name":"create_entities","arguments":{}}`)
	if _, err := ServerInterceptor(engineForwarding(tr, ""), tr).InterceptToolCall(ctx, call, okForward); err != nil {
		t.Fatal(err)
	}
	if _, err := ServerInterceptor(engineForwarding(tr, OutcomeDenied), tr).InterceptToolCall(ctx, call, okForward); err != nil {
		t.Fatal(err)
	}
	m.PolicyDecision(ctx, "memory", "create_entities", "allow")
	m.ApprovalHeld(ctx)
	m.ApprovalHeld(ctx)
	m.ApprovalResolved(ctx, "approved", 3*time.Second)
	m.SagaFinished(ctx, "compensated")
	m.SetStuckSagas(ctx, 2)
	m.CompensationFinished(ctx, "memory", "create_entities", "failed", 1)
	m.CompensationFinished(ctx, "memory", "create_entities", "ok", 2)
	m.JournalCommit(12, 3*time.Millisecond)

	fams := scrape(t, p)
	want := map[string]dto.MetricType{
		"mcp_server_operation_duration_seconds":     dto.MetricType_HISTOGRAM,
		"mcp_client_operation_duration_seconds":     dto.MetricType_HISTOGRAM,
		"agenthelm_tool_calls_total":                dto.MetricType_COUNTER,
		"agenthelm_policy_decisions_total":          dto.MetricType_COUNTER,
		"agenthelm_approvals_pending":               dto.MetricType_GAUGE,
		"agenthelm_approval_wait_duration_seconds":  dto.MetricType_HISTOGRAM,
		"agenthelm_sagas_finished_total":            dto.MetricType_COUNTER,
		"agenthelm_sagas_stuck":                     dto.MetricType_GAUGE,
		"agenthelm_compensations_total":             dto.MetricType_COUNTER,
		"agenthelm_compensation_retries_total":      dto.MetricType_COUNTER,
		"agenthelm_journal_commit_duration_seconds": dto.MetricType_HISTOGRAM,
		"agenthelm_journal_commit_records":          dto.MetricType_HISTOGRAM,
		"go_goroutines":                             dto.MetricType_GAUGE,
		"target_info":                               dto.MetricType_GAUGE,
	}
	for name, typ := range want {
		f := fams[name]
		if f == nil {
			t.Errorf("/metrics has no family %s", name)
			continue
		}
		if f.GetType() != typ {
			t.Errorf("family %s is a %v, want %v", name, f.GetType(), typ)
		}
	}
	if t.Failed() {
		return
	}

	s := sample(t, fams, "mcp_server_operation_duration_seconds", map[string]string{
		"mcp_method_name": "tools/call", "gen_ai_tool_name": "create_entities", "gen_ai_operation_name": "execute_tool",
		"agenthelm_upstream": "memory", "network_transport": "tcp", "mcp_protocol_version": "2025-11-25",
	})
	if got := s.GetHistogram().GetSampleCount(); got != 2 {
		t.Errorf("server duration count = %d, want 2", got)
	}
	if got := sample(t, fams, "mcp_client_operation_duration_seconds", map[string]string{"gen_ai_tool_name": "create_entities"}).GetHistogram().GetSampleCount(); got != 2 {
		t.Errorf("client duration count = %d, want 2", got)
	}
	for outcome, n := range map[string]float64{"ok": 1, "denied": 1} {
		c := sample(t, fams, "agenthelm_tool_calls_total", map[string]string{
			"gen_ai_tool_name": "create_entities", "agenthelm_upstream": "memory", "agenthelm_outcome": outcome})
		if c.GetCounter().GetValue() != n {
			t.Errorf("calls{outcome=%s} = %v, want %v", outcome, c.GetCounter().GetValue(), n)
		}
	}
	if v := sample(t, fams, "agenthelm_approvals_pending", nil).GetGauge().GetValue(); v != 1 {
		t.Errorf("approvals pending = %v, want 1", v)
	}
	if v := sample(t, fams, "agenthelm_sagas_stuck", nil).GetGauge().GetValue(); v != 2 {
		t.Errorf("sagas stuck = %v, want 2", v)
	}
	if v := sample(t, fams, "agenthelm_compensation_retries_total", nil).GetCounter().GetValue(); v != 1 {
		t.Errorf("compensation retries = %v, want 1", v)
	}
	sample(t, fams, "agenthelm_compensations_total", map[string]string{"agenthelm_compensation_outcome": "failed"})
	sample(t, fams, "agenthelm_policy_decisions_total", map[string]string{"agenthelm_policy_result": "allow"})
	sample(t, fams, "agenthelm_sagas_finished_total", map[string]string{"agenthelm_saga_state": "compensated"})
	sample(t, fams, "agenthelm_approval_wait_duration_seconds", map[string]string{"agenthelm_approval_result": "approved"})
	if v := sample(t, fams, "agenthelm_journal_commit_records", nil).GetHistogram().GetSampleSum(); v != 12 {
		t.Errorf("journal commit records sum = %v, want 12", v)
	}
	sample(t, fams, "target_info", map[string]string{"service_name": "agenthelm", "service_version": "test"})
}

func TestMetricsBeforeAnyCall(t *testing.T) {
	fams := scrape(t, setupNone(t))
	for _, name := range []string{"agenthelm_approvals_pending", "agenthelm_sagas_stuck"} {
		if v := sample(t, fams, name, nil).GetGauge().GetValue(); v != 0 {
			t.Errorf("%s = %v at start, want 0", name, v)
		}
	}
}

// TestSagasInMemoryGauge: the gauge reads the engine's count at each
// scrape.
func TestSagasInMemoryGauge(t *testing.T) {
	p := setupNone(t)
	n := 3
	if err := p.Metrics().ObserveSagasInMemory(func() int { return n }); err != nil {
		t.Fatal(err)
	}
	if v := sample(t, scrape(t, p), "agenthelm_sagas_in_memory", nil).GetGauge().GetValue(); v != 3 {
		t.Errorf("agenthelm_sagas_in_memory = %v, want 3", v)
	}
	n = 1
	if v := sample(t, scrape(t, p), "agenthelm_sagas_in_memory", nil).GetGauge().GetValue(); v != 1 {
		t.Errorf("agenthelm_sagas_in_memory = %v after the count fell, want 1", v)
	}
}

func TestSetupNoneIsNoop(t *testing.T) {
	p := setupNone(t)
	if _, ok := p.TracerProvider().(noop.TracerProvider); !ok {
		t.Errorf("exporter none: tracer provider is %T, want a no-op one", p.TracerProvider())
	}
	if p.Tracer().tracing {
		t.Error("exporter none: the tracer starts spans")
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

func TestSetupRejects(t *testing.T) {
	for _, cfg := range []config.Telemetry{
		{Exporter: "jaeger"},
		{Exporter: "otlp", OTLPProtocol: "thrift"},
		{Exporter: "otlp", OTLPEndpoint: "ftp://x:1"},
		{Exporter: "otlp", OTLPEndpoint: "no-port"},
	} {
		if _, err := Setup(context.Background(), cfg, Options{}); err == nil {
			t.Errorf("Setup(%+v): no error", cfg)
		}
	}
}

// closedAddr returns a 127.0.0.1 address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// TestSetupOTLPCollectorDown: with the collector unreachable, calls go
// through (spans are queued, then dropped) and Shutdown returns by its
// deadline.
func TestSetupOTLPCollectorDown(t *testing.T) {
	addr := closedAddr(t)
	for _, cfg := range []config.Telemetry{
		{Exporter: config.ExporterOTLP, OTLPProtocol: config.ProtocolHTTP, OTLPEndpoint: "http://" + addr, SampleRatio: 1},
		{Exporter: config.ExporterOTLP, OTLPProtocol: config.ProtocolGRPC, OTLPEndpoint: addr, Insecure: true, SampleRatio: 1},
	} {
		t.Run(cfg.OTLPProtocol, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			p, err := Setup(ctx, cfg, Options{})
			if err != nil {
				t.Fatalf("Setup: %v", err)
			}
			if !p.Tracer().tracing {
				t.Fatal("exporter otlp: the tracer starts no spans")
			}
			tr := p.Tracer()
			si := ServerInterceptor(engineForwarding(tr, ""), tr)
			done := make(chan struct{})
			go func() {
				defer close(done)
				// More spans than the queue holds.
				for range 2*spanQueueSize + 100 {
					_, _ = si.InterceptToolCall(ctx, testCall(`{"name":"t"}`), okForward)
				}
			}()
			select {
			case <-done:
			case <-ctx.Done():
				t.Fatal("calls blocked while the collector is down")
			}

			sctx, scancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer scancel()
			shut := make(chan error, 1)
			go func() { shut <- p.Shutdown(sctx) }()
			select {
			case err := <-shut:
				if err == nil {
					t.Error("Shutdown with the collector down reported no error")
				}
			case <-ctx.Done():
				t.Fatal("Shutdown did not return by its deadline")
			}
		})
	}
}

// receiver is an in-process OTLP/HTTP endpoint that counts export requests.
type receiver struct {
	traces, metrics atomic.Int64
	srv             *httptest.Server
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodPost {
			switch req.URL.Path {
			case "/v1/traces":
				r.traces.Add(1)
			case "/v1/metrics":
				r.metrics.Add(1)
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func TestShutdownFlushes(t *testing.T) {
	rcv := newReceiver(t)
	// The config's endpoint wins over the standard variables.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+closedAddr(t))
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://"+closedAddr(t)+"/v1/traces")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")
	ctx := context.Background()
	p, err := Setup(ctx, config.Telemetry{Exporter: config.ExporterOTLP, OTLPProtocol: config.ProtocolHTTP,
		OTLPEndpoint: rcv.srv.URL, SampleRatio: 1}, Options{ServiceVersion: "test"})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	tr := p.Tracer()
	if _, err := ServerInterceptor(engineForwarding(tr, ""), tr).InterceptToolCall(ctx, testCall(`{"name":"t"}`), okForward); err != nil {
		t.Fatal(err)
	}
	if n := rcv.traces.Load(); n != 0 {
		t.Fatalf("%d trace exports before Shutdown; the batch should still be queued", n)
	}
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := p.Shutdown(sctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if n := rcv.traces.Load(); n < 1 {
		t.Errorf("Shutdown sent %d trace exports, want at least 1", n)
	}
	if n := rcv.metrics.Load(); n < 1 {
		t.Errorf("Shutdown sent %d metric exports, want at least 1", n)
	}
}

func TestSignalPath(t *testing.T) {
	tests := []struct{ base, signal, want string }{
		{"", "traces", "/v1/traces"},
		{"/", "traces", "/v1/traces"},
		{"/otlp", "metrics", "/otlp/v1/metrics"},
		{"/otlp/", "traces", "/otlp/v1/traces"},
		{"/v1/traces", "traces", "/v1/traces"},
		{"/x/v1/traces", "metrics", "/x/v1/metrics"},
	}
	for _, tt := range tests {
		if got := signalPath(tt.base, tt.signal); got != tt.want {
			t.Errorf("signalPath(%q, %q) = %q, want %q", tt.base, tt.signal, got, tt.want)
		}
	}
}

func TestOTLPMetricsSelection(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		ep   string
		want bool
	}{
		{"defaults", nil, "", true},
		{"config endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, "127.0.0.1:4318", true},
		{"traces endpoint only", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, "", false},
		{"metrics exporter none", map[string]string{"OTEL_METRICS_EXPORTER": "none"}, "127.0.0.1:4318", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"} {
				t.Setenv(k, tt.env[k])
			}
			ep, err := parseEndpoint(tt.ep)
			if err != nil {
				t.Fatal(err)
			}
			if got := otlpMetrics(ep); got != tt.want {
				t.Errorf("otlpMetrics = %v, want %v", got, tt.want)
			}
		})
	}
}
