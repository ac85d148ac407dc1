package config

import (
	"slices"
	"strings"
	"testing"
)

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestEnvOverrides(t *testing.T) {
	in := "listen: {mcp: 127.0.0.1:1}\njournal: {dir: ./from-file}\nadmin: {token_file: /run/secrets/token}\n"
	c, err := parse([]byte(in), "f.yaml", envOf(map[string]string{
		EnvListenMCP:   "127.0.0.1:17070",
		EnvListenHTTP:  "127.0.0.1:17080",
		EnvListenAdmin: "127.0.0.1:17071",
		EnvDataDir:     "/var/lib/agenthelm",
		EnvLogLevel:    "DEBUG",
		EnvAdminToken:  "0123456789abcdef0123",
	}))
	if err != nil {
		t.Fatal(err)
	}
	got := []string{c.Listen.MCP, c.Listen.HTTP, c.Listen.Admin, c.Journal.Dir, c.Log.Level, c.Admin.Token, c.Admin.TokenFile}
	want := []string{"127.0.0.1:17070", "127.0.0.1:17080", "127.0.0.1:17071", "/var/lib/agenthelm", "debug", "0123456789abcdef0123", ""}
	if !slices.Equal(got, want) {
		t.Errorf("after overrides = %q, want %q", got, want)
	}
}

func TestEnvOverridesThroughParse(t *testing.T) {
	t.Setenv(EnvListenMCP, "127.0.0.1:27070")
	t.Setenv(EnvLogLevel, "")
	c, err := Parse([]byte("log: {level: warn}\n"), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen.MCP != "127.0.0.1:27070" {
		t.Errorf("listen.mcp = %q, want the environment's", c.Listen.MCP)
	}
	if c.Log.Level != "warn" {
		t.Errorf("log.level = %q: an empty variable must change nothing", c.Log.Level)
	}
}

func TestEnvOverrideErrorsNameTheVariable(t *testing.T) {
	_, err := parse([]byte("log: {level: info}\n"), "f.yaml", envOf(map[string]string{
		EnvListenAdmin: "7071",
		EnvLogLevel:    "loud",
	}))
	want := []string{
		`env AGENTHELM_LISTEN_ADMIN: listen.admin: "7071" is not host:port, like 127.0.0.1:7070`,
		`env AGENTHELM_LOG_LEVEL: log.level: "loud" is not one of debug, info, warn, error`,
	}
	if got := errLines(err); !slices.Equal(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestEnvOverrideWarningsNameTheVariable(t *testing.T) {
	c, err := parse(nil, "f.yaml", envOf(map[string]string{EnvListenMCP: "0.0.0.0:7070"}))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`env AGENTHELM_LISTEN_MCP: listen.mcp: 0.0.0.0:7070 is not a loopback address: other hosts can connect`}
	if got := c.Warnings(); !slices.Equal(got, want) {
		t.Errorf("Warnings() = %q, want %q", got, want)
	}
}

func TestApplyEnvOnDefault(t *testing.T) {
	c := Default()
	c.ApplyEnv(envOf(map[string]string{EnvDataDir: "/data", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}))
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Journal.Dir != "/data" || c.Telemetry.Exporter != ExporterOTLP {
		t.Errorf("journal.dir = %q, telemetry.exporter = %q", c.Journal.Dir, c.Telemetry.Exporter)
	}
	t.Setenv(EnvDataDir, "/from-process")
	c = Default()
	c.ApplyEnv(nil)
	if c.Journal.Dir != "/from-process" {
		t.Errorf("ApplyEnv(nil): journal.dir = %q, want the process environment's", c.Journal.Dir)
	}
}

func TestTelemetryExporterSelection(t *testing.T) {
	otel := envOf(map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"})
	tests := []struct {
		name string
		in   string
		env  func(string) (string, bool)
		want string
	}{
		{"nothing", "", noEnv, ExporterNone},
		{"endpoint in file", "telemetry: {otlp_endpoint: \"127.0.0.1:4317\", otlp_protocol: grpc}\n", noEnv, ExporterOTLP},
		{"endpoint in environment", "", otel, ExporterOTLP},
		{"explicit none wins", "telemetry: {exporter: none}\n", otel, ExporterNone},
		{"explicit otlp", "telemetry: {exporter: otlp}\n", noEnv, ExporterOTLP},
	}
	for _, tt := range tests {
		c, err := parse([]byte(tt.in), "f", tt.env)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if c.Telemetry.Exporter != tt.want {
			t.Errorf("%s: telemetry.exporter = %q, want %q", tt.name, c.Telemetry.Exporter, tt.want)
		}
	}
}

func TestExpand(t *testing.T) {
	env := envOf(map[string]string{"A": "alpha", "B": "", "TOKEN": "s3cr$t"})
	tests := []struct {
		in, want, err string
	}{
		{in: "plain", want: "plain"},
		{in: "${A}", want: "alpha"},
		{in: "Bearer ${TOKEN}", want: "Bearer s3cr$t"},
		{in: "${A}-${B}-${A}", want: "alpha--alpha"},
		{in: "$$", want: "$"},
		{in: "$${A}", want: "${A}"},
		{in: "cost: $5 and $", want: "cost: $5 and $"},
		{in: "$HOME", want: "$HOME"},
		{in: "", want: ""},
		{in: "${MISSING}", err: "environment variable MISSING is not set"},
		{in: "${X}${A}${Y}", err: "environment variables X, Y are not set"},
		{in: "${A", err: `unterminated ${ in "${A"`},
		{in: "${A:-x}", err: "${A:-x}: a reference holds only a variable name (letters, digits, _); write $$ for a literal $"},
		{in: "${}", err: "${}: a reference holds only a variable name (letters, digits, _); write $$ for a literal $"},
		{in: "${1A}", err: "${1A}: a reference holds only a variable name (letters, digits, _); write $$ for a literal $"},
	}
	for _, tt := range tests {
		got, err := expand(tt.in, env)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("expand(%q) = %q, %v; want error %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("expand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestResolvedEnvAndHeaders(t *testing.T) {
	t.Setenv("AGENTHELM_TEST_TOKEN", "tok")
	in := `upstreams:
  m:
    command: [server]
    env: {API_KEY: "${AGENTHELM_TEST_TOKEN}", MODE: fast, BOTH: "${AGENTHELM_TEST_UNSET_1}${AGENTHELM_TEST_UNSET_2}"}
  h:
    url: http://127.0.0.1:9000/mcp
    headers: {Authorization: "Bearer ${AGENTHELM_TEST_TOKEN}"}
`
	c, err := parse([]byte(in), "f", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Upstreams["m"].Env["API_KEY"]; got != "${AGENTHELM_TEST_TOKEN}" {
		t.Errorf("loaded env holds %q: expansion must wait for use", got)
	}
	_, err = c.Upstreams["m"].ResolvedEnv()
	want := "upstreams.m.env.BOTH: environment variables AGENTHELM_TEST_UNSET_1, AGENTHELM_TEST_UNSET_2 are not set"
	if err == nil || err.Error() != want {
		t.Errorf("ResolvedEnv() error = %v, want %s", err, want)
	}
	t.Setenv("AGENTHELM_TEST_UNSET_1", "x")
	t.Setenv("AGENTHELM_TEST_UNSET_2", "y")
	env, err := c.Upstreams["m"].ResolvedEnv()
	if err != nil {
		t.Fatal(err)
	}
	if env["API_KEY"] != "tok" || env["MODE"] != "fast" || env["BOTH"] != "xy" {
		t.Errorf("ResolvedEnv() = %q", env)
	}
	h, err := c.Upstreams["h"].ResolvedHeaders()
	if err != nil || h["Authorization"] != "Bearer tok" {
		t.Errorf("ResolvedHeaders() = %q, %v", h, err)
	}
	if got, err := c.Upstreams["h"].ResolvedEnv(); got != nil || err != nil {
		t.Errorf("ResolvedEnv() without env = %v, %v; want nil, nil", got, err)
	}
	if got := c.Upstreams["m"].VarNames(); !slices.Equal(got, []string{"AGENTHELM_TEST_TOKEN", "AGENTHELM_TEST_UNSET_1", "AGENTHELM_TEST_UNSET_2"}) {
		t.Errorf("VarNames() = %q", got)
	}
	// An Upstream built in code, without a name, still names the field.
	_, err = Upstream{Headers: map[string]string{"X": "${AGENTHELM_TEST_UNSET_3}"}}.ResolvedHeaders()
	if err == nil || err.Error() != "headers.X: environment variable AGENTHELM_TEST_UNSET_3 is not set" {
		t.Errorf("ResolvedHeaders() error = %v", err)
	}
}

func TestWebhookResolvedURL(t *testing.T) {
	w := Webhook{URL: "${AGENTHELM_TEST_HOOK}"}
	if _, err := w.ResolvedURL(); err == nil || err.Error() != "approvals.webhook.url: environment variable AGENTHELM_TEST_HOOK is not set" {
		t.Errorf("ResolvedURL() error = %v", err)
	}
	t.Setenv("AGENTHELM_TEST_HOOK", "https://hooks.example.com/T/B/x")
	if got, err := w.ResolvedURL(); err != nil || got != "https://hooks.example.com/T/B/x" {
		t.Errorf("ResolvedURL() = %q, %v", got, err)
	}
}
