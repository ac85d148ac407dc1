//go:build jaeger

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestNativeTopology runs deploy/native/run.sh on free ports, drives the
// refund saga through it, checks each component and the metrics the
// Grafana dashboard queries, then stops it with deploy/native/stop.sh and
// checks that nothing it started is left.
func TestNativeTopology(t *testing.T) {
	jaegerBin := jaegerBinary(t)
	state := t.TempDir()
	ports := freePorts(t, 10)
	names := []string{"AGENTHELM_MCP_PORT", "AGENTHELM_ADMIN_PORT", "HOTEL_PORT", "PAYMENTS_PORT", "EMAIL_PORT",
		"JAEGER_UI_PORT", "JAEGER_QUERY_GRPC_PORT", "JAEGER_OTLP_GRPC_PORT", "JAEGER_OTLP_HTTP_PORT", "JAEGER_HEALTH_PORT"}
	env := append(os.Environ(), "AGENTHELM_NATIVE_DIR="+state, "AGENTHELM_JAEGER_BIN="+jaegerBin,
		"AGENTHELM_POLICY_DIR="+allowAllPolicy(t),
		// Prometheus and Grafana are optional; this test covers the rest.
		"PROMETHEUS_BIN=none", "GRAFANA_BIN=none")
	port := map[string]int{}
	for i, n := range names {
		env = append(env, fmt.Sprintf("%s=%d", n, ports[i]))
		port[n] = ports[i]
	}
	script := func(name string) (string, error) {
		cmd := exec.Command("bash", filepath.Join(root, "deploy", "native", name))
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			out, err := script("stop.sh")
			t.Logf("stop.sh: %v\n%s", err, out)
		}
	})

	start := time.Now()
	out, err := script("run.sh")
	if err != nil {
		logs, _ := filepath.Glob(filepath.Join(state, "logs", "*.log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			t.Logf("%s:\n%s", l, tail(string(b), 20))
		}
		t.Fatalf("run.sh: %v\n%s", err, out)
	}
	t.Logf("run.sh took %s:\n%s", time.Since(start).Round(time.Millisecond), out)

	config := filepath.Join(state, "agenthelm.yaml")
	mcpAddr := fmt.Sprintf("127.0.0.1:%d", port["AGENTHELM_MCP_PORT"])
	admin := fmt.Sprintf("http://127.0.0.1:%d", port["AGENTHELM_ADMIN_PORT"])
	j := &jaeger{query: fmt.Sprintf("127.0.0.1:%d", port["JAEGER_UI_PORT"])}

	tp := newTraceparent()
	sagaID := runRefundSaga(t, mcpAddr, config, tp)

	// The CLI reads the trace through the admin API.
	show := cli(t, "traces", "show", sagaID, "--config", config)
	for _, want := range []string{"step 1  hotel/book_hotel  succeeded", "step 3  email/send_email  tool_error", "payments/refund_customer  compensated"} {
		if !strings.Contains(show, want) {
			t.Errorf("traces show lacks %q:\n%s", want, show)
		}
	}

	// Jaeger got the agent's trace.
	if err := eventually(30*time.Second, func() error {
		spans, err := j.trace(tp.traceID)
		if err != nil {
			return err
		}
		for _, c := range refundCalls {
			if !hasSpan(spans, "tools/call "+c.tool, "server") {
				return fmt.Errorf("no server span tools/call %s; spans:\n  %s", c.tool, describe(spans))
			}
		}
		return nil
	}); err != nil {
		t.Errorf("Jaeger: %v", err)
	}

	// Every metric and label the Grafana dashboard queries is on /metrics.
	token, err := os.ReadFile(filepath.Join(state, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	body, err := httpGet(admin+"/metrics", strings.TrimSpace(string(token)))
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	checkDashboardMetrics(t, string(body))
	// The refund saga is compensated, and nothing holds it: it has left
	// the engine's memory.
	if v, ok := gaugeValue(string(body), "agenthelm_sagas_in_memory"); !ok || v != 0 {
		t.Errorf("agenthelm_sagas_in_memory = %v (found %v) after the saga ended, want 0", v, ok)
	}

	// stop.sh stops everything run.sh started.
	var pids []int
	files, _ := filepath.Glob(filepath.Join(state, "pids", "*.pid"))
	for _, f := range files {
		var pid int
		b, _ := os.ReadFile(f)
		fmt.Sscan(string(b), &pid)
		pids = append(pids, pid)
	}
	if len(pids) != 5 {
		t.Errorf("run.sh left %d pid files, want 5 (3 tool servers, jaeger, agenthelm): %q", len(pids), files)
	}
	start = time.Now()
	out, err = script("stop.sh")
	stopped = true
	if err != nil {
		t.Fatalf("stop.sh: %v\n%s", err, out)
	}
	t.Logf("stop.sh took %s:\n%s", time.Since(start).Round(time.Millisecond), out)
	for _, pid := range pids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); !strings.Contains(string(b), ") Z ") {
				t.Errorf("pid %d still runs after stop.sh", pid)
			}
		}
	}
	if left, _ := filepath.Glob(filepath.Join(state, "pids", "*.pid")); len(left) != 0 {
		t.Errorf("pid files left: %q", left)
	}
}

func hasSpan(spans []jaegerSpan, name, kind string) bool {
	for _, s := range spans {
		if s.OperationName == name && s.kind() == kind {
			return true
		}
	}
	return false
}

// checkDashboardMetrics checks that each metric the dashboard's queries
// name is exposed, with every label they match on or group by.
// gaugeValue reads an unlabelled gauge from a Prometheus exposition.
func gaugeValue(exposition, name string) (float64, bool) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(exposition))
	if err != nil || families[name] == nil || len(families[name].GetMetric()) == 0 {
		return 0, false
	}
	return families[name].GetMetric()[0].GetGauge().GetValue(), true
}

func checkDashboardMetrics(t *testing.T, exposition string) {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(exposition))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	labels := map[string]map[string]bool{} // metric -> label names seen
	for name, f := range families {
		seen := map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				seen[l.GetName()] = true
			}
		}
		labels[name] = seen
	}
	data, err := os.ReadFile(filepath.Join(root, "deploy", "grafana", "provisioning", "dashboards", "agenthelm.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	selector := regexp.MustCompile(`\b((?:agenthelm|mcp)_\w+?)(_bucket)?\{([^}]*)\}|\b((?:agenthelm|mcp)_\w+)\b`)
	matcher := regexp.MustCompile(`(\w+)\s*(?:=~|!~|!=|=)`)
	grouping := regexp.MustCompile(`\bby\s*\(([^)]*)\)`)
	for _, panel := range d.Panels {
		for _, tg := range panel.Targets {
			if tg.Expr == "" {
				continue
			}
			var metrics []string
			want := map[string]bool{}
			for _, m := range selector.FindAllStringSubmatch(grouping.ReplaceAllString(tg.Expr, ""), -1) {
				name := m[1]
				if name == "" {
					name = m[4]
				}
				metrics = append(metrics, name)
				for _, l := range matcher.FindAllStringSubmatch(m[3], -1) {
					want[l[1]] = true
				}
			}
			for _, g := range grouping.FindAllStringSubmatch(tg.Expr, -1) {
				for _, l := range strings.Split(g[1], ",") {
					if l = strings.TrimSpace(l); l != "" && l != "le" {
						want[l] = true
					}
				}
			}
			for _, name := range metrics {
				seen, ok := labels[name]
				if !ok {
					t.Errorf("panel %q queries %s, which /metrics does not have", panel.Title, name)
					continue
				}
				for l := range want {
					if !seen[l] {
						t.Errorf("panel %q: %s has no label %s on /metrics (it has %v)", panel.Title, name, l, keys(seen))
					}
				}
			}
		}
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
