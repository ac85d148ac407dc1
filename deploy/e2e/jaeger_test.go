//go:build jaeger

package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// expectedSpans is what Jaeger must hold for the refund saga: the spans
// telemetry/doc.go documents. Keep this list, and only this list, in step
// with it. inAgentTrace marks spans that continue the agent's traceparent;
// the others may be in any trace of the service. Every one carries
// agenthelm.saga.id.
//
// A compensation's INTERNAL span is named after the step it undoes
// ("compensate book_hotel"); the request it sends upstream is a CLIENT
// span named after the compensating tool ("tools/call cancel_hotel_booking").
var expectedSpans = []struct {
	name, kind   string
	inAgentTrace bool
}{
	// Each call the agent made: SERVER, in the agent's trace.
	{"tools/call book_hotel", "server", true},
	{"tools/call charge_customer", "server", true},
	{"tools/call send_email", "server", true},
	// Each request agenthelm sent upstream: CLIENT.
	{"tools/call book_hotel", "client", true},
	{"tools/call charge_customer", "client", true},
	{"tools/call send_email", "client", true},
	// The gate and the journal around each call.
	{"policy.evaluate", "internal", true},
	{"journal.commit", "internal", false},
	// The unwinding after send_email failed: a compensation per undone
	// step, each with its request upstream.
	{"saga.unwind", "internal", false},
	{"compensate charge_customer", "internal", false},
	{"tools/call refund_customer", "client", false},
	{"compensate book_hotel", "internal", false},
	{"tools/call cancel_hotel_booking", "client", false},
}

// TestJaegerTraces runs a saga that unwinds through `agenthelm serve`,
// which exports its traces over OTLP/HTTP to a real Jaeger; then it reads
// them back from Jaeger's HTTP API.
func TestJaegerTraces(t *testing.T) {
	j := startJaeger(t)
	urls := exampleServers(t)
	s := startSidecar(t, fmt.Sprintf(`
listen: {mcp: 127.0.0.1:0, admin: 127.0.0.1:0}
journal: {dir: $DIR/data}
policy: {dir: %q, mode: enforce}
saga: {idle_commit: 1h}
telemetry: {exporter: otlp, otlp_endpoint: "http://%s", otlp_protocol: http, insecure: true}
upstreams:
  hotel:
    url: %s
    trusted: true
    tools:
      book_hotel: {compensate: {tool: cancel_hotel_booking, args: '{booking_id: .result.structuredContent.booking_id}'}}
  payments:
    url: %s
    trusted: true
    tools:
      charge_customer: {compensate: {tool: refund_customer, args: '{charge_id: .result.structuredContent.charge_id}'}}
  email:
    url: %s
    trusted: true
    tools:
      send_email: {irreversible: true}
`, allowAllPolicy(t), j.otlpHTTP, urls["hotel"], urls["payments"], urls["email"]),
		// Metrics stay on /metrics (this Jaeger takes traces only); spans
		// leave in batches every 200 ms rather than 5 s.
		"OTEL_METRICS_EXPORTER=prometheus", "OTEL_BSP_SCHEDULE_DELAY=200")

	tp := newTraceparent()
	sagaID := runRefundSaga(t, s.mcp, s.config, tp)

	// The trace CLI agrees on what failed.
	var failed []struct {
		ToolName string `json:"tool_name"`
		Outcome  string `json:"outcome"`
	}
	if err := json.Unmarshal([]byte(cli(t, "traces", "filter", "--status", "failed", "--json", "--config", s.config)), &failed); err != nil ||
		len(failed) != 1 || failed[0].ToolName != "send_email" || failed[0].Outcome != "tool_error" {
		t.Errorf("traces filter --status failed = %+v, %v; want send_email tool_error", failed, err)
	}

	start := time.Now()
	var agentTrace, all []jaegerSpan
	var missing []string
	err := eventually(30*time.Second, func() error {
		var err error
		if agentTrace, err = j.trace(tp.traceID); err != nil {
			return err
		}
		if all, err = j.spans("agenthelm"); err != nil {
			return err
		}
		missing = missing[:0]
		for _, w := range expectedSpans {
			in := all
			if w.inAgentTrace {
				in = agentTrace
			}
			if !slices.ContainsFunc(in, func(s jaegerSpan) bool { return s.OperationName == w.name && s.kind() == w.kind }) {
				where := "any trace"
				if w.inAgentTrace {
					where = "the agent's trace"
				}
				missing = append(missing, fmt.Sprintf("%s %q in %s", w.kind, w.name, where))
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("missing %d spans", len(missing))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Jaeger (%s) lacks, after %s:\n  %s\nspans it has:\n  %s", j.query, time.Since(start).Round(time.Millisecond),
			strings.Join(missing, "\n  "), describe(all))
	}
	t.Logf("all %d expected spans in Jaeger %s after the saga; %d spans in the agent's trace, %d in all",
		len(expectedSpans), time.Since(start).Round(time.Millisecond), len(agentTrace), len(all))

	for _, sp := range all {
		if !isExpected(sp) {
			continue
		}
		if got := sp.tag("agenthelm.saga.id"); got != sagaID {
			t.Errorf("span %s %q: agenthelm.saga.id = %q, want %q", sp.kind(), sp.OperationName, got, sagaID)
		}
		if sp.kind() != "server" {
			continue
		}
		tool := strings.TrimPrefix(sp.OperationName, "tools/call ")
		if got := sp.tag("gen_ai.tool.name"); got != tool {
			t.Errorf("span %q: gen_ai.tool.name = %q", sp.OperationName, got)
		}
		if got, want := sp.tag("otel.status_code") == "ERROR", tool == "send_email"; got != want {
			t.Errorf("span %q: error status %v, want %v", sp.OperationName, got, want)
		}
	}
}

func isExpected(sp jaegerSpan) bool {
	for _, w := range expectedSpans {
		if w.name == sp.OperationName && w.kind == sp.kind() {
			return true
		}
	}
	return false
}

func describe(spans []jaegerSpan) string {
	var lines []string
	for _, sp := range spans {
		lines = append(lines, fmt.Sprintf("%s %q trace %s saga %s", sp.kind(), sp.OperationName, sp.TraceID, sp.tag("agenthelm.saga.id")))
	}
	sort.Strings(lines)
	if len(lines) == 0 {
		return "(none)"
	}
	return strings.Join(lines, "\n  ")
}
