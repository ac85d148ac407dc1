package config

import (
	"testing"
	"time"
)

func TestDurationString(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{500 * time.Millisecond, "500ms"},
		{time.Second, "1s"},
		{90 * time.Second, "1m30s"},
		{time.Minute, "1m"},
		{time.Hour, "1h"},
		{90 * time.Minute, "1h30m"},
		{time.Hour + time.Second, "1h0m1s"},
		{720 * time.Hour, "720h"},
		{-time.Minute, "-1m"},
	}
	for _, tt := range tests {
		got := Duration(tt.in).String()
		if got != tt.want {
			t.Errorf("Duration(%v).String() = %q, want %q", tt.in, got, tt.want)
		}
		if back, err := time.ParseDuration(got); err != nil || back != tt.in {
			t.Errorf("time.ParseDuration(%q) = %v, %v; want %v", got, back, err, tt.in)
		}
	}
}

func TestDurationYAML(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  string
	}{
		{in: "60s", want: time.Minute},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "250ms", want: 250 * time.Millisecond},
		{in: `"2m"`, want: 2 * time.Minute},
		{in: "!!str 3s", err: "agenthelm.yaml:1:24: limits.call_timeout: YAML tags such as !!str are not supported: write the value plainly, quoted if it must be a string"},
		{in: "0", err: "agenthelm.yaml:1: limits.call_timeout: must be positive, got 0s"},
		{in: "60", err: "agenthelm.yaml:1:24: limits.call_timeout: duration 60 has no unit: write 60s, 60m or 60h"},
		{in: "1 minute", err: `agenthelm.yaml:1:24: limits.call_timeout: invalid duration "1 minute": use Go syntax such as 90s, 5m or 1h30m`},
		{in: "1.5", err: "agenthelm.yaml:1:24: limits.call_timeout: expected a duration such as 90s or 5m, got a number"},
		{in: "[1s]", err: "agenthelm.yaml:1:24: limits.call_timeout: expected a duration such as 90s or 5m, got a list"},
	}
	for _, tt := range tests {
		doc := "limits: {call_timeout: " + tt.in + "}\n"
		c, err := parse([]byte(doc), "agenthelm.yaml", noEnv)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("Parse(%q) = %v\nwant %s", doc, err, tt.err)
			}
			continue
		}
		if err != nil || time.Duration(c.Limits.CallTimeout) != tt.want {
			t.Errorf("Parse(%q): call_timeout = %v, %v; want %v", doc, c, err, tt.want)
		}
	}
}
