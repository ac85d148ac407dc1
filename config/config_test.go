package config

import (
	"slices"
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("Default() warnings = %q", w)
	}
	tests := []struct {
		field string
		got   any
		want  any
	}{
		{"listen.mcp", c.Listen.MCP, "127.0.0.1:7070"},
		{"listen.http", c.Listen.HTTP, "127.0.0.1:7080"},
		{"listen.admin", c.Listen.Admin, "127.0.0.1:7071"},
		{"journal.dir", c.Journal.Dir, "./agenthelm-data"},
		{"journal.sync", c.Journal.Sync, "always"},
		{"journal.retention", c.Journal.Retention, Duration(720 * time.Hour)},
		{"policy.dir", c.Policy.Dir, "./policies"},
		{"policy.mode", c.Policy.Mode, "enforce"},
		{"policy.test_on_reload", c.Policy.TestOnReload, false},
		{"saga.scope", c.Saga.Scope, "agent"},
		{"saga.idle_commit", c.Saga.IdleCommit, Duration(60 * time.Second)},
		{"saga.agent_header", c.Saga.AgentHeader, "X-Agent-Id"},
		{"saga.control_tools", c.Saga.ControlTools, false},
		{"saga.compensation.max_attempts", c.Saga.Compensation.MaxAttempts, 8},
		{"saga.compensation.initial_backoff", c.Saga.Compensation.InitialBackoff, Duration(time.Second)},
		{"saga.compensation.max_backoff", c.Saga.Compensation.MaxBackoff, Duration(5 * time.Minute)},
		{"saga.compensation.continue_past_failure", c.Saga.Compensation.ContinuePastFailure, false},
		{"saga.open_grace", c.Saga.OpenGrace, Duration(5 * time.Minute)},
		{"approvals.timeout", c.Approvals.Timeout, Duration(15 * time.Minute)},
		{"approvals.max_hold", c.Approvals.MaxHold, Duration(time.Hour)},
		{"approvals.webhook.url", c.Approvals.Webhook.URL, ""},
		{"approvals.webhook.format", c.Approvals.Webhook.Format, "generic"},
		{"admin.token", c.Admin.Token, ""},
		{"admin.token_file", c.Admin.TokenFile, ""},
		{"limits.max_body_bytes", c.Limits.MaxBodyBytes, ByteSize(4 << 20)},
		{"limits.call_timeout", c.Limits.CallTimeout, Duration(60 * time.Second)},
		{"limits.shutdown_grace", c.Limits.ShutdownGrace, Duration(10 * time.Second)},
		{"log.level", c.Log.Level, "info"},
		{"log.format", c.Log.Format, "text"},
		{"telemetry.exporter", c.Telemetry.Exporter, "none"},
		{"telemetry.otlp_endpoint", c.Telemetry.OTLPEndpoint, ""},
		{"telemetry.otlp_protocol", c.Telemetry.OTLPProtocol, "http"},
		{"telemetry.insecure", c.Telemetry.Insecure, false},
		{"telemetry.sample_ratio", c.Telemetry.SampleRatio, 1.0},
		{"telemetry.capture_arguments", c.Telemetry.CaptureArguments, false},
		{"upstreams (count)", len(c.Upstreams), 0},
		{"routes (count)", len(c.Routes), 0},
		{"redaction.paths (count)", len(c.Redaction.Paths), 0},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("Default().%s = %v, want %v", tt.field, tt.got, tt.want)
		}
	}
	if want := []string{"tool_error", "protocol_error", "timeout", "upstream_down", "approval_rejected"}; !slices.Equal(c.Saga.UnwindOn, want) {
		t.Errorf("Default().saga.unwind_on = %q, want %q", c.Saga.UnwindOn, want)
	}
	if want := []string{"password", "token", "secret", "authorization", "api_key", "card_number"}; !slices.Equal(c.Redaction.Keys, want) {
		t.Errorf("Default().redaction.keys = %q, want %q", c.Redaction.Keys, want)
	}
}

func TestDefaultIsFresh(t *testing.T) {
	a, b := Default(), Default()
	a.Saga.UnwindOn[0] = "changed"
	a.Redaction.Keys[0] = "changed"
	a.Upstreams["x"] = Upstream{}
	if b.Saga.UnwindOn[0] == "changed" || b.Redaction.Keys[0] == "changed" || len(b.Upstreams) != 0 {
		t.Error("Default() values share memory")
	}
}

func TestUpstreamKind(t *testing.T) {
	tests := []struct {
		u    Upstream
		want UpstreamKind
	}{
		{Upstream{Command: []string{"x"}}, KindStdio},
		{Upstream{URL: "http://127.0.0.1:1/mcp"}, KindMCPHTTP},
		{Upstream{HTTP: "http://127.0.0.1:1"}, KindREST},
		{Upstream{}, ""},
	}
	for _, tt := range tests {
		if got := tt.u.Kind(); got != tt.want {
			t.Errorf("%+v.Kind() = %q, want %q", tt.u, got, tt.want)
		}
	}
}

func TestUpstreamNames(t *testing.T) {
	c := Default()
	for _, n := range []string{"zeta", "alpha", "Mid", "beta-2"} {
		c.Upstreams[n] = Upstream{Command: []string{"x"}}
	}
	if got, want := c.UpstreamNames(), []string{"Mid", "alpha", "beta-2", "zeta"}; !slices.Equal(got, want) {
		t.Errorf("UpstreamNames() = %q, want %q", got, want)
	}
}
