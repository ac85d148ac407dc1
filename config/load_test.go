package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// briefExample is the configuration shown in the design brief, verbatim.
const briefExample = `listen:    {mcp: 127.0.0.1:7070, http: 127.0.0.1:7080, admin: 127.0.0.1:7071}
journal:   {dir: ./agenthelm-data, sync: always, retention: 720h}
policy:    {dir: ./policies, mode: enforce}            # enforce | dry-run
saga:      {scope: agent, idle_commit: 60s}
upstreams:
  memory:                                              # an MCP server over stdio
    command: [npx, -y, "@modelcontextprotocol/server-memory"]
    packs: [memory]                                    # ready-made compensators for this server
    tools:                                             # rules for this server's tools
      create_entities:
        compensate: {tool: delete_entities, args: '{entityNames: [.args.entities[].name]}'}
  payments:                                            # a REST API
    http: http://127.0.0.1:9000
routes:                                                # HTTP requests that are tool calls
  - {upstream: payments, method: POST, path: /v1/charges, tool: charge,
     compensate: {method: POST, path: '"/v1/refunds"', body: '{charge: .response.body.id}'}}
telemetry: {otlp_endpoint: http://127.0.0.1:4318}     # standard OTEL_* variables also work
`

// cmpConfig compares Configs by what they say, not by compiled programs
// or positions.
var cmpConfig = cmp.Options{
	cmpopts.IgnoreUnexported(Config{}, Expr{}),
	cmpopts.EquateEmpty(),
}

func TestParseBriefExample(t *testing.T) {
	c, err := parse([]byte(briefExample), "agenthelm.yaml", noEnv)
	if err != nil {
		t.Fatalf("Parse(brief example): %v", err)
	}
	want := Default()
	want.Telemetry.Exporter = ExporterOTLP // implied by otlp_endpoint
	want.Telemetry.OTLPEndpoint = "http://127.0.0.1:4318"
	want.Upstreams = map[string]Upstream{
		"memory": {
			Name:    "memory",
			Command: []string{"npx", "-y", "@modelcontextprotocol/server-memory"},
			Packs:   []string{"memory"},
			Tools: map[string]Tool{
				"create_entities": {
					Compensate: &ToolCall{Tool: "delete_entities", Args: Expr{Source: "{entityNames: [.args.entities[].name]}"}},
					OnError:    OnErrorUnwind,
				},
			},
		},
		"payments": {Name: "payments", HTTP: "http://127.0.0.1:9000"},
	}
	want.Routes = []Route{{
		Upstream: "payments", Method: "POST", Path: "/v1/charges", Tool: "charge",
		Compensate: &HTTPCall{Method: "POST", Path: Expr{Source: `"/v1/refunds"`}, Body: Expr{Source: "{charge: .response.body.id}"}},
		OnError:    OnErrorUnwind,
	}}
	if diff := cmp.Diff(want, c, cmpConfig); diff != "" {
		t.Errorf("Parse(brief example) mismatch (-want +got):\n%s", diff)
	}
	if len(c.Warnings()) != 0 {
		t.Errorf("Warnings() = %q, want none", c.Warnings())
	}
	if c.Upstreams["memory"].Tools["create_entities"].Compensate.Args.Code() == nil {
		t.Error("compensate.args was not compiled")
	}
	got, err := c.Upstreams["memory"].Tools["create_entities"].Compensate.Args.Eval(t.Context(),
		map[string]any{"args": map[string]any{"entities": []any{map[string]any{"name": "a"}, map[string]any{"name": "b"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"entityNames": []any{"a", "b"}}, got); diff != "" {
		t.Errorf("compensate.args result (-want +got):\n%s", diff)
	}
	if got := c.UpstreamNames(); !slices.Equal(got, []string{"memory", "payments"}) {
		t.Errorf("UpstreamNames() = %q", got)
	}
	if c.Source() != "agenthelm.yaml" {
		t.Errorf("Source() = %q", c.Source())
	}
}

func TestLoadExampleFile(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "agenthelm.example.yaml"))
	if err != nil {
		t.Fatalf("Load(example): %v", err)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("example has warnings:\n%s", strings.Join(w, "\n"))
	}
	if got := c.UpstreamNames(); !slices.Equal(got, []string{"files", "memory", "payments", "tickets"}) {
		t.Errorf("UpstreamNames() = %q", got)
	}
	kinds := map[string]UpstreamKind{"files": KindStdio, "memory": KindStdio, "payments": KindREST, "tickets": KindMCPHTTP}
	for name, want := range kinds {
		if got := c.Upstreams[name].Kind(); got != want {
			t.Errorf("Upstreams[%q].Kind() = %q, want %q", name, got, want)
		}
	}
	if got := c.Upstreams["tickets"].VarNames(); !slices.Equal(got, []string{"TICKETS_TOKEN"}) {
		t.Errorf("tickets VarNames() = %q", got)
	}
	// A block scalar expression keeps its text and compiles.
	args := c.Upstreams["tickets"].Tools["update_ticket"].Compensate.Args
	if !strings.HasPrefix(args.Source, "{id: .args.id") || args.Code() == nil {
		t.Errorf("tickets update_ticket compensate.args = %q (compiled %v)", args.Source, args.Code() != nil)
	}
	if got := c.Upstreams["files"].Tools["list_directory"].Retry; got == nil || got.Attempts != 3 || got.Backoff != Duration(500*time.Millisecond) {
		t.Errorf("list_directory retry = %+v", got)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want fs.ErrNotExist", err)
	}
	if err != nil && !strings.HasPrefix(err.Error(), "read config: ") {
		t.Errorf("Load(missing) = %q, want a read config: prefix", err)
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agenthelm.yaml")
	if err := os.WriteFile(path, []byte("log:\n  level: loud\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	want := path + `:2: log.level: "loud" is not one of debug, info, warn, error`
	if err == nil || err.Error() != want {
		t.Errorf("Load() = %v, want %s", err, want)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("testdata", "agenthelm.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string]string{
		"default": "",
		"brief":   briefExample,
		"example": string(example),
	} {
		t.Run(name, func(t *testing.T) {
			c1, err := parse([]byte(in), "in.yaml", noEnv)
			if err != nil {
				t.Fatal(err)
			}
			out, err := c1.Marshal()
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			c2, err := parse(out, "out.yaml", noEnv)
			if err != nil {
				t.Fatalf("Parse(Marshal()): %v\n%s", err, out)
			}
			if diff := cmp.Diff(c1, c2, cmpConfig); diff != "" {
				t.Errorf("round trip mismatch (-first +second):\n%s\n%s", diff, out)
			}
		})
	}
}

func TestParseEmptyIsDefault(t *testing.T) {
	for _, in := range []string{"", "\n", "# only a comment\n", "---\n", "{}\n"} {
		c, err := parse([]byte(in), "f", noEnv)
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			continue
		}
		if diff := cmp.Diff(Default(), c, cmpConfig); diff != "" {
			t.Errorf("Parse(%q) differs from Default() (-want +got):\n%s", in, diff)
		}
	}
}

func TestParseKeepsDefaultsOfUnsetKeys(t *testing.T) {
	c, err := parse([]byte("listen:\nsaga:\n  compensation: {max_attempts: 3}\n"), "f", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Saga.Compensation.MaxAttempts = 3
	if diff := cmp.Diff(want, c, cmpConfig); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
}

func TestParseListsReplaceDefaults(t *testing.T) {
	c, err := parse([]byte("redaction: {keys: [ssn]}\nsaga: {unwind_on: []}\n"), "f", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Redaction.Keys, []string{"ssn"}) {
		t.Errorf("redaction.keys = %q, want [ssn]", c.Redaction.Keys)
	}
	if len(c.Saga.UnwindOn) != 0 {
		t.Errorf("saga.unwind_on = %q, want empty", c.Saga.UnwindOn)
	}
}

func TestParseAnchorsAndMergeKeys(t *testing.T) {
	in := `upstreams:
  a: &npx
    command: [npx, -y, server-a]
    env: {NODE_OPTIONS: --max-old-space-size=256}
  b:
    <<: *npx
    command: [npx, -y, server-b]
    tools:
      t: {compensate: {tool: undo, args: '{'}}
`
	_, err := parse([]byte(in), "f.yaml", noEnv)
	want := []string{`f.yaml:9: upstreams.b.tools.t.compensate.args: jq parse error: unexpected EOF (at 1:2 of the expression)`}
	if got := errLines(err); !slices.Equal(got, want) {
		t.Fatalf("errors = %q, want %q", got, want)
	}
	c, err := parse([]byte(strings.Replace(in, "args: '{'", "args: .args", 1)), "f.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	b := c.Upstreams["b"]
	if !slices.Equal(b.Command, []string{"npx", "-y", "server-b"}) || b.Env["NODE_OPTIONS"] == "" {
		t.Errorf("merged upstream b = %+v", b)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"unknown top-level key", "listen: {}\nupstream: {}\n",
			`agenthelm.yaml:2:1: unknown field "upstream" (did you mean "upstreams"?)`},
		{"unknown nested key", "upstreams:\n  memory:\n    comand: [npx]\n",
			`agenthelm.yaml:3:5: upstreams.memory: unknown field "comand" (did you mean "command"?)`},
		{"unknown key, no close match", "log: {colour: true}\n",
			`agenthelm.yaml:1:7: log: unknown field "colour" (known: level, format)`},
		{"unknown tool key", "upstreams:\n  m:\n    command: [x]\n    tools:\n      t: {readonly: true}\n",
			`agenthelm.yaml:5:11: upstreams.m.tools.t: unknown field "readonly" (did you mean "read_only"?)`},
		{"unknown route key", "routes:\n  - {upstream: p, verb: GET}\n",
			`agenthelm.yaml:2:19: routes[0]: unknown field "verb" (known: upstream, method, path, tool, compensate, read_only, irreversible, idempotent, retry, on_error, errors_may_leave_effects)`},
		{"wrong type", "upstreams:\n  m:\n    command: npx server\n",
			`agenthelm.yaml:3:14: upstreams.m.command: expected a list, got a string`},
		{"wrong scalar", "saga: {control_tools: yes}\n",
			`agenthelm.yaml:1:23: saga.control_tools: expected true or false, got a string`},
		{"not a mapping", "- listen\n", `agenthelm.yaml:1:1: expected a mapping, got a list`},
		{"section not a mapping", "journal: ./data\n", `agenthelm.yaml:1:10: journal: expected a mapping, got a string`},
		{"duration without unit", "saga:\n  idle_commit: 60\n",
			`agenthelm.yaml:2:16: saga.idle_commit: duration 60 has no unit: write 60s, 60m or 60h`},
		{"bad duration", "approvals: {timeout: 15 minutes}\n",
			`agenthelm.yaml:1:22: approvals.timeout: invalid duration "15 minutes": use Go syntax such as 90s, 5m or 1h30m`},
		{"bad size", "limits: {max_body_bytes: 4 megs}\n",
			`agenthelm.yaml:1:26: limits.max_body_bytes: invalid size "4 megs": unknown unit "megs" (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)`},
		{"unquoted jq object", "upstreams:\n  m:\n    command: [x]\n    tools:\n      t:\n        compensate: {tool: d, args: {names: .args.names}}\n",
			`agenthelm.yaml:6:37: upstreams.m.tools.t.compensate.args: a jq expression must be a YAML string: quote it, e.g. '{id: .args.id}'`},
		{"syntax error", "listen: {mcp: 1\n", `agenthelm.yaml:1:9: could not find flow mapping end token '}'`},
		{"duplicate key", "log:\n  level: info\n  level: debug\n", `agenthelm.yaml:3:3: mapping key "level" already defined at [2:3]`},
		{"two documents", "log: {level: info}\n---\nlog: {level: debug}\n", `agenthelm.yaml:3:4: the file holds more than one YAML document; agenthelm reads one`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse([]byte(tt.in), "agenthelm.yaml", noEnv)
			if err == nil || err.Error() != tt.want {
				t.Errorf("Parse(%q) = %v\nwant %s", tt.in, err, tt.want)
			}
		})
	}
}

func TestParseWithoutSourceName(t *testing.T) {
	_, err := parse([]byte("log: {level: loud}\n"), "", noEnv)
	want := `line 1: log.level: "loud" is not one of debug, info, warn, error`
	if err == nil || err.Error() != want {
		t.Errorf("Parse() = %v, want %s", err, want)
	}
}

func TestFieldPathString(t *testing.T) {
	tests := []struct {
		p    fieldPath
		want string
	}{
		{fieldPath{}, ""},
		{fieldPath{}.key("listen").key("mcp"), "listen.mcp"},
		{fieldPath{}.key("routes").idx(2).key("compensate"), "routes[2].compensate"},
		{fieldPath{}.key("upstreams").key("m").key("tools").key("fs.write"), `upstreams.m.tools."fs.write"`},
		{fieldPath{}.key("a").key(""), `a.""`},
		{fieldPath{}.key("[0]"), `"[0]"`},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("fieldPath%v.String() = %q, want %q", []pathSeg(tt.p), got, tt.want)
		}
	}
}

// A few lines of nested aliases must not take the decoder minutes.
func TestParseRefusesAliasBombs(t *testing.T) {
	var seq, merge strings.Builder
	seq.WriteString("x: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\nredaction:\n  keys: &a1 [*a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0]\n")
	seq.WriteString("  paths: [")
	for i := 0; i < 2000; i++ {
		if i > 0 {
			seq.WriteString(", ")
		}
		seq.WriteString("*a1")
	}
	seq.WriteString("]\n")
	merge.WriteString("upstreams:\n  u0: &m0 {command: [x]}\n")
	for i := 1; i < 12; i++ {
		fmt.Fprintf(&merge, "  u%d: &m%d {<<: [*m%d, *m%d, *m%d, *m%d]}\n", i, i, i-1, i-1, i-1, i-1)
	}
	for name, in := range map[string]string{"sequences": seq.String(), "merges": merge.String()} {
		_, err := parse([]byte(in), "bomb.yaml", noEnv)
		if err == nil || !strings.Contains(err.Error(), "has more than 100000 YAML nodes, counting what aliases expand to") {
			t.Errorf("%s: Parse = %v, want the expansion limit", name, err)
		}
	}
}
