package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// noEnv is an environment with nothing set, so that tests do not depend on
// the machine's.
func noEnv(string) (string, bool) { return "", false }

func errLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

// rest declares a REST upstream (pay) and a stdio one (mem) for route cases.
const rest = "upstreams: {pay: {http: \"http://127.0.0.1:9000\"}, mem: {command: [x]}}\n"

func TestValidateErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // every error line, in order
	}{
		// listen
		{"listen not host:port", `listen: {mcp: "7070"}`,
			[]string{`agenthelm.yaml:1: listen.mcp: "7070" is not host:port, like 127.0.0.1:7070`}},
		{"listen named port", `listen: {http: "127.0.0.1:http"}`,
			[]string{`agenthelm.yaml:1: listen.http: "127.0.0.1:http": port must be a number from 0 to 65535`}},
		{"listen port range", `listen: {http: "127.0.0.1:70000"}`,
			[]string{`agenthelm.yaml:1: listen.http: "127.0.0.1:70000": port must be a number from 0 to 65535`}},
		{"listen admin required", `listen: {admin: ""}`,
			[]string{`agenthelm.yaml:1: listen.admin: required: the CLI and health checks use it`}},
		{"listen duplicate", "listen:\n  http: 127.0.0.1:7070\n",
			[]string{`agenthelm.yaml:2: listen.http: 127.0.0.1:7070 is also listen.mcp`}},

		// journal, policy
		{"journal dir", `journal: {dir: ""}`, []string{`agenthelm.yaml:1: journal.dir: required`}},
		{"journal sync", `journal: {sync: sometimes}`,
			[]string{`agenthelm.yaml:1: journal.sync: "sometimes" is not one of always, none`}},
		{"journal retention", "journal:\n  dir: d\n  retention: 23h\n",
			[]string{`agenthelm.yaml:3: journal.retention: must be at least 24h, got 23h`}},
		{"policy", `policy: {dir: " ", mode: enforcing}`, []string{
			`agenthelm.yaml:1: policy.dir: required`,
			`agenthelm.yaml:1: policy.mode: "enforcing" is not one of enforce, dry-run`}},

		{"policy bundle", "policy:\n  bundle:\n    url: ftp://policies.example/b.tar.gz\n    poll: 0s\n    headers: {\"Bad Header\": x, Authorization: \"Bearer ${TOKEN\"}\n    key_id: \"\"\n", []string{
			`agenthelm.yaml:3: policy.bundle.url: "ftp://policies.example/b.tar.gz" must be an http:// or https:// URL`,
			`agenthelm.yaml:4: policy.bundle.poll: must be positive, got 0s`,
			`agenthelm.yaml:5: policy.bundle.headers.Authorization: unterminated ${ in "${TOKEN"`,
			`agenthelm.yaml:5: policy.bundle.headers."Bad Header": is not a valid HTTP header name`,
			`agenthelm.yaml:6: policy.bundle.key_id: must not be empty (the default is default)`}},
		{"policy bundle key without url", "policy: {bundle: {public_key_file: k.pem}}\n",
			[]string{`agenthelm.yaml:1: policy.bundle.public_key_file: needs policy.bundle.url`}},

		// saga
		{"saga scope and durations", "saga:\n  scope: global\n  idle_commit: 0s\n  open_grace: -1s\n", []string{
			`agenthelm.yaml:2: saga.scope: "global" is not one of agent, session`,
			`agenthelm.yaml:3: saga.idle_commit: must be positive, got 0s`,
			`agenthelm.yaml:4: saga.open_grace: must be positive, got -1s`}},
		{"saga agent header", `saga: {agent_header: "X Agent"}`,
			[]string{`agenthelm.yaml:1: saga.agent_header: "X Agent" is not a valid HTTP header name`}},
		{"saga agent token: keys and secret", "saga:\n  agent_token: {keys_file: k.pem, secret: \"${S}\"}\n",
			[]string{`agenthelm.yaml:2: saga.agent_token: set keys_file or secret, not both`}},
		{"saga agent token: secret in the file", "saga:\n  agent_token:\n    secret: hunter2hunter2hunter2hunter2hunter2\n",
			[]string{`agenthelm.yaml:3: saga.agent_token.secret: write the secret as ${VAR} and put it in the environment, not in the file`}},
		{"saga agent token: nothing to verify with", "saga:\n  agent_token: {required: true, claim: \"\"}\n", []string{
			`agenthelm.yaml:2: saga.agent_token: needs keys_file or secret to verify tokens with`,
			`agenthelm.yaml:2: saga.agent_token.claim: must not be empty (the default is sub)`}},
		{"saga unwind_on", "saga:\n  unwind_on:\n    - tool_error\n    - crash\n    - tool_error\n", []string{
			`agenthelm.yaml:4: saga.unwind_on[1]: "crash" is not one of tool_error, protocol_error, timeout, upstream_down, denied, approval_rejected`,
			`agenthelm.yaml:5: saga.unwind_on[2]: "tool_error" is listed twice`}},
		{"saga compensation", "saga:\n  compensation: {max_attempts: 0, initial_backoff: 0s, max_backoff: -1s}\n", []string{
			`agenthelm.yaml:2: saga.compensation.max_attempts: must be at least 1, got 0`,
			`agenthelm.yaml:2: saga.compensation.initial_backoff: must be positive, got 0s`,
			`agenthelm.yaml:2: saga.compensation.max_backoff: -1s is less than initial_backoff (0s)`}},

		// approvals
		{"approvals durations", `approvals: {timeout: 0s, max_hold: -1m}`, []string{
			`agenthelm.yaml:1: approvals.timeout: must be positive, got 0s`,
			`agenthelm.yaml:1: approvals.max_hold: must be positive, got -1m`}},
		{"webhook url scheme", "approvals:\n  webhook:\n    url: ftp://example.com/hook\n    format: teams\n", []string{
			`agenthelm.yaml:3: approvals.webhook.url: "ftp://example.com/hook" must be an http:// or https:// URL`,
			`agenthelm.yaml:4: approvals.webhook.format: "teams" is not one of generic, slack`}},
		{"webhook url reference", `approvals: {webhook: {url: "${SLACK_URL"}}`,
			[]string{`agenthelm.yaml:1: approvals.webhook.url: unterminated ${ in "${SLACK_URL"`}},

		// admin, limits, log
		{"admin both", `admin: {token: 0123456789abcdef, token_file: /run/token}`,
			[]string{`agenthelm.yaml:1: admin.token_file: set token or token_file, not both`}},
		{"admin token spaces", `admin: {token: "0123456789 abcdef"}`,
			[]string{`agenthelm.yaml:1: admin.token: must not contain spaces or control characters`}},
		{"limits", "limits:\n  max_body_bytes: 0\n  call_timeout: 0s\n  shutdown_grace: -1s\n", []string{
			`agenthelm.yaml:2: limits.max_body_bytes: must be positive, got 0`,
			`agenthelm.yaml:3: limits.call_timeout: must be positive, got 0s`,
			`agenthelm.yaml:4: limits.shutdown_grace: must not be negative, got -1s`}},
		{"log", `log: {level: verbose, format: xml}`, []string{
			`agenthelm.yaml:1: log.level: "verbose" is not one of debug, info, warn, error`,
			`agenthelm.yaml:1: log.format: "xml" is not one of text, json`}},

		// redaction
		{"redaction keys", `redaction: {keys: ["", Password, password]}`, []string{
			`agenthelm.yaml:1: redaction.keys[0]: must not be empty`,
			`agenthelm.yaml:1: redaction.keys[2]: "password" is listed twice (keys match case-insensitively)`}},
		{"redaction paths", "redaction:\n  paths:\n    - .args.card\n    - '.args['\n", []string{
			`agenthelm.yaml:4: redaction.paths[1]: jq parse error: unexpected EOF (at 1:7 of the expression)`}},

		// telemetry
		{"telemetry enums", `telemetry: {exporter: jaeger, otlp_protocol: udp, sample_ratio: 1.5}`, []string{
			`agenthelm.yaml:1: telemetry.exporter: "jaeger" is not one of none, otlp`,
			`agenthelm.yaml:1: telemetry.otlp_protocol: "udp" is not one of http, grpc`,
			`agenthelm.yaml:1: telemetry.sample_ratio: must be from 0 to 1, got 1.5`}},
		{"telemetry endpoint", `telemetry: {otlp_endpoint: "collector"}`,
			[]string{`agenthelm.yaml:1: telemetry.otlp_endpoint: "collector" is neither an http(s) URL nor host:port`}},
		{"telemetry endpoint url", `telemetry: {otlp_endpoint: "grpc://collector:4317"}`,
			[]string{`agenthelm.yaml:1: telemetry.otlp_endpoint: "grpc://collector:4317" must be an http:// or https:// URL`}},

		// upstreams
		{"upstream name", `upstreams: {"bad name": {command: [x]}}`,
			[]string{`agenthelm.yaml:1: upstreams."bad name": upstream names may use only letters, digits, _ and -`}},
		{"upstream no kind", "upstreams:\n  m:\n    trusted: true\n",
			[]string{`agenthelm.yaml:2: upstreams.m: needs one of command (stdio MCP server), url (MCP over HTTP) or http (REST API)`}},
		{"upstream null", "upstreams:\n  m:\n",
			[]string{`agenthelm.yaml:2: upstreams.m: needs one of command (stdio MCP server), url (MCP over HTTP) or http (REST API)`}},
		{"upstream two kinds", "upstreams:\n  m:\n    command: [x]\n    url: http://127.0.0.1:9000/mcp\n",
			[]string{`agenthelm.yaml:2: upstreams.m: has command and url: set exactly one`}},
		{"upstream empty command", "upstreams:\n  m:\n    command: []\n",
			[]string{`agenthelm.yaml:3: upstreams.m.command: must name a program`}},
		{"upstream blank program", "upstreams:\n  m:\n    command: [\"\", a]\n",
			[]string{`agenthelm.yaml:3: upstreams.m.command[0]: must name a program`}},
		{"stdio-only keys", "upstreams:\n  m:\n    url: http://127.0.0.1:9000/mcp\n    env: {A: b}\n    cwd: /srv\n", []string{
			`agenthelm.yaml:4: upstreams.m.env: only applies to a command`,
			`agenthelm.yaml:5: upstreams.m.cwd: only applies to a command`}},
		{"env entries", "upstreams:\n  m:\n    command: [x]\n    env:\n      \"A=B\": x\n      TOKEN: \"${API TOKEN}\"\n", []string{
			`agenthelm.yaml:5: upstreams.m.env."A=B": is not a valid environment variable name`,
			`agenthelm.yaml:6: upstreams.m.env.TOKEN: ${API TOKEN}: a reference holds only a variable name (letters, digits, _); write $$ for a literal $`}},
		{"url", "upstreams:\n  m:\n    url: ws://127.0.0.1:9000/mcp\n    transport: websocket\n", []string{
			`agenthelm.yaml:3: upstreams.m.url: "ws://127.0.0.1:9000/mcp" must be an http:// or https:// URL`,
			`agenthelm.yaml:4: upstreams.m.transport: "websocket" is not one of streamable-http, sse`}},
		{"url credentials", "upstreams:\n  m:\n    url: http://bob:hunter2@127.0.0.1:9000/mcp\n",
			[]string{`agenthelm.yaml:3: upstreams.m.url: "http://xxx@127.0.0.1:9000/mcp" carries credentials: put them in headers, with ${VAR}`}},
		{"url no host", "upstreams:\n  m:\n    url: http:///mcp\n",
			[]string{`agenthelm.yaml:3: upstreams.m.url: "http:///mcp" has no host`}},
		{"url unparsable", "upstreams:\n  m:\n    http: \"http://[::1\"\n",
			[]string{`agenthelm.yaml:3: upstreams.m.http: "http://[::1" is not a URL: missing ']' in host`}},
		{"transport without url", "upstreams:\n  m:\n    command: [x]\n    transport: sse\n",
			[]string{`agenthelm.yaml:4: upstreams.m.transport: only applies to url`}},
		{"headers", "upstreams:\n  m:\n    command: [x]\n    headers: {\"Bad Header\": x, Auth: \"Bearer ${TOKEN\"}\n", []string{
			`agenthelm.yaml:4: upstreams.m.headers: only applies to url or http`,
			`agenthelm.yaml:4: upstreams.m.headers.Auth: unterminated ${ in "${TOKEN"`,
			`agenthelm.yaml:4: upstreams.m.headers."Bad Header": is not a valid HTTP header name`}},
		{"packs", "upstreams:\n  m:\n    command: [x]\n    packs: [memory, github, memory]\n", []string{
			`agenthelm.yaml:4: upstreams.m.packs[1]: unknown pack "github" (known: filesystem, memory)`,
			`agenthelm.yaml:4: upstreams.m.packs[2]: "memory" is listed twice`}},
		{"tools on REST", "upstreams:\n  m:\n    http: http://127.0.0.1:9000\n    tools: {charge: {read_only: true}}\n",
			[]string{`agenthelm.yaml:4: upstreams.m.tools: tool rules are for MCP upstreams; for a REST API use routes`}},

		// tools
		{"tool empty name", "upstreams:\n  m:\n    command: [x]\n    tools: {\"\": {read_only: true}}\n",
			[]string{`agenthelm.yaml:4: upstreams.m.tools."": a tool name must not be empty`}},
		{"tool compensate tool", "upstreams:\n  m:\n    command: [x]\n    tools:\n      t:\n        compensate: {args: .args}\n        capture: {tool: \" \"}\n", []string{
			`agenthelm.yaml:6: upstreams.m.tools.t.compensate.tool: required: the tool to call`,
			`agenthelm.yaml:7: upstreams.m.tools.t.capture.tool: required: the tool to call`}},
		{"tool jq parse error", "upstreams:\n  memory:\n    command: [x]\n    tools:\n      create_entities:\n        compensate:\n          tool: delete_entities\n          args: '{entityNames: [.args.entities[].name}'\n",
			[]string{`agenthelm.yaml:8: upstreams.memory.tools.create_entities.compensate.args: jq parse error: unexpected token "}" (at 1:37 of the expression)`}},
		{"tool jq compile error", "upstreams:\n  m:\n    command: [x]\n    tools:\n      t:\n        capture: {tool: read, args: 'frobnicate(.args)'}\n        compensate: {tool: undo, args: '$nope'}\n", []string{
			`agenthelm.yaml:7: upstreams.m.tools.t.compensate.args: jq compile error: variable not defined: $nope`,
			`agenthelm.yaml:6: upstreams.m.tools.t.capture.args: jq compile error: function not defined: frobnicate/1`}},
		{"tool kinds", "upstreams:\n  m:\n    command: [x]\n    tools:\n      a: {read_only: true, irreversible: true}\n      b: {read_only: true, compensate: {tool: x}}\n      c: {irreversible: true, compensate: {tool: x}}\n", []string{
			`agenthelm.yaml:5: upstreams.m.tools.a.irreversible: a read_only step has no effect to be irreversible`,
			`agenthelm.yaml:6: upstreams.m.tools.b.compensate: a read_only step is never compensated: remove compensate or read_only`,
			`agenthelm.yaml:7: upstreams.m.tools.c.compensate: an irreversible step has no compensation: remove compensate or irreversible`}},
		{"tool retry", "upstreams:\n  m:\n    command: [x]\n    tools:\n      t:\n        retry: {attempts: 0, backoff: -1s}\n        on_error: ignore\n", []string{
			`agenthelm.yaml:6: upstreams.m.tools.t.retry: needs idempotent: true (a call that is not idempotent is never re-sent)`,
			`agenthelm.yaml:6: upstreams.m.tools.t.retry.attempts: must be at least 1, got 0`,
			`agenthelm.yaml:6: upstreams.m.tools.t.retry.backoff: must not be negative, got -1s`,
			`agenthelm.yaml:7: upstreams.m.tools.t.on_error: "ignore" is not one of unwind, continue`}},
		{"dotted tool name", "upstreams:\n  m:\n    command: [x]\n    tools:\n      fs.write:\n        compensate: {tool: fs.delete, args: '{'}\n",
			[]string{`agenthelm.yaml:6: upstreams.m.tools."fs.write".compensate.args: jq parse error: unexpected EOF (at 1:2 of the expression)`}},

		// routes
		{"route upstream", rest + "routes:\n  - {method: GET, path: /a, tool: a}\n  - {upstream: nope, method: GET, path: /b, tool: b}\n  - {upstream: mem, method: GET, path: /c, tool: c}\n", []string{
			`agenthelm.yaml:3: routes[0].upstream: required`,
			`agenthelm.yaml:4: routes[1].upstream: no upstream named "nope"`,
			`agenthelm.yaml:5: routes[2].upstream: upstream "mem" has no http: routes need a REST API`}},
		{"route method", rest + "routes:\n  - {upstream: pay, path: /a, tool: a}\n  - {upstream: pay, method: post, path: /b, tool: b}\n  - {upstream: pay, method: FETCH, path: /c, tool: c}\n", []string{
			`agenthelm.yaml:3: routes[0].method: required`,
			`agenthelm.yaml:4: routes[1].method: "post": write methods in upper case, POST`,
			`agenthelm.yaml:5: routes[2].method: "FETCH" is not an HTTP method (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE, CONNECT)`}},
		{"route path and tool", rest + "routes:\n  - {upstream: pay, method: GET}\n  - {upstream: pay, method: GET, path: v1/a, tool: a}\n  - {upstream: pay, method: GET, path: /v1/a?x=1, tool: b}\n", []string{
			`agenthelm.yaml:3: routes[0].path: required`,
			`agenthelm.yaml:3: routes[0].tool: required: the tool name policy, the journal and traces use`,
			`agenthelm.yaml:4: routes[1].path: "v1/a" must start with /`,
			`agenthelm.yaml:5: routes[2].path: "/v1/a?x=1" must be a plain path, without query, fragment or spaces`}},
		{"route retry and on_error", rest + "routes:\n  - {upstream: pay, method: POST, path: /a, tool: a, retry: {attempts: 0}, on_error: ignore}\n", []string{
			`agenthelm.yaml:3: routes[0].retry: needs idempotent: true (a call that is not idempotent is never re-sent)`,
			`agenthelm.yaml:3: routes[0].retry.attempts: must be at least 1, got 0`,
			`agenthelm.yaml:3: routes[0].on_error: "ignore" is not one of unwind, continue`}},
		{"route duplicate", rest + "routes:\n  - {upstream: pay, method: POST, path: /v1/charges, tool: charge}\n  - {upstream: pay, method: POST, path: /v1/charges, tool: charge2}\n",
			[]string{`agenthelm.yaml:4: routes[1]: same upstream, method and path as routes[0]`}},
		{"route placeholders", rest + "routes:\n  - {upstream: pay, method: GET, path: '/v1/{a}x', tool: a}\n  - {upstream: pay, method: GET, path: '/v1/{1a}', tool: b}\n  - {upstream: pay, method: GET, path: '/v1/{a}/{a}', tool: c}\n  - {upstream: pay, method: GET, path: '/v1/../admin', tool: d}\n  - {upstream: pay, method: GET, path: '/v1/{}', tool: e}\n", []string{
			`agenthelm.yaml:3: routes[0].path: "/v1/{a}x": a placeholder is a whole segment, {name}, its name made of letters, digits and _ (got "{a}x")`,
			`agenthelm.yaml:4: routes[1].path: "/v1/{1a}": a placeholder is a whole segment, {name}, its name made of letters, digits and _ (got "{1a}")`,
			`agenthelm.yaml:5: routes[2].path: "/v1/{a}/{a}" uses the placeholder {a} twice`,
			`agenthelm.yaml:6: routes[3].path: "/v1/../admin" has a ".." segment: request paths are matched as sent, never normalized, so it would never match`,
			`agenthelm.yaml:7: routes[4].path: "/v1/{}": a placeholder is a whole segment, {name}, its name made of letters, digits and _ (got "{}")`}},
		{"route placeholder clash", rest + "routes:\n  - {upstream: pay, method: DELETE, path: '/v1/charges/{id}', tool: a}\n  - {upstream: pay, method: DELETE, path: '/v1/charges/{charge}', tool: b}\n  - {upstream: pay, method: DELETE, path: /v1/charges/all, tool: c}\n", []string{
			`agenthelm.yaml:4: routes[1].path: "/v1/charges/{charge}" matches the same requests as routes[0] ("/v1/charges/{id}"): placeholders differ only in name`}},
		{"route tool names", rest + "routes:\n  - {upstream: pay, method: POST, path: /a, tool: t}\n  - {upstream: pay, method: PUT, path: /a, tool: t}\n  - {upstream: pay, method: POST, path: /c, tool: agenthelm_commit}\n", []string{
			`agenthelm.yaml:4: routes[1].tool: "t" is already the tool of routes[0]: tool names are unique per upstream`,
			`agenthelm.yaml:5: routes[2].tool: "agenthelm_commit": names starting with agenthelm_ are reserved for agenthelm's control tools`}},
		{"route compensate", rest + "routes:\n  - upstream: pay\n    method: POST\n    path: /v1/charges\n    tool: charge\n    compensate:\n      body: '{charge: .response.body.id'\n      headers: {\"X Y\": '\"a\"', X-Reason: ''}\n", []string{
			`agenthelm.yaml:7: routes[0].compensate.method: required`,
			`agenthelm.yaml:7: routes[0].compensate.path: required: a jq expression`,
			`agenthelm.yaml:8: routes[0].compensate.body: jq parse error: unexpected EOF (at 1:27 of the expression)`,
			`agenthelm.yaml:9: routes[0].compensate.headers."X Y": is not a valid HTTP header name`,
			`agenthelm.yaml:9: routes[0].compensate.headers.X-Reason: required: a jq expression`}},
		{"route kinds", rest + "routes:\n  - {upstream: pay, method: GET, path: /a, tool: a, read_only: true, compensate: {method: DELETE, path: '\"/a\"'}}\n",
			[]string{`agenthelm.yaml:3: routes[0].compensate: a read_only step is never compensated: remove compensate or read_only`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parse([]byte(tt.in), "agenthelm.yaml", noEnv)
			if err == nil {
				t.Fatalf("Parse(%q) succeeded, want errors:\n%s", tt.in, strings.Join(tt.want, "\n"))
			}
			if c != nil {
				t.Errorf("Parse(%q) returned a Config with its error", tt.in)
			}
			if got := errLines(err); !slices.Equal(got, tt.want) {
				t.Errorf("Parse(%q) errors:\n%s\nwant:\n%s", tt.in, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	in := "listen: {admin: \"\"}\njournal: {sync: maybe}\nlog: {level: loud}\n"
	_, err := parse([]byte(in), "a.yaml", noEnv)
	want := []string{
		`a.yaml:1: listen.admin: required: the CLI and health checks use it`,
		`a.yaml:2: journal.sync: "maybe" is not one of always, none`,
		`a.yaml:3: log.level: "loud" is not one of debug, info, warn, error`,
	}
	if got := errLines(err); !slices.Equal(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestValidateWithoutFile(t *testing.T) {
	c := Default()
	c.Listen.Admin = ""
	c.Upstreams["m"] = Upstream{}
	want := []string{
		`listen.admin: required: the CLI and health checks use it`,
		`upstreams.m: needs one of command (stdio MCP server), url (MCP over HTTP) or http (REST API)`,
	}
	if got := errLines(c.Validate()); !slices.Equal(got, want) {
		t.Errorf("Validate() errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestValidateNamesAncestorLineForMissingKeys(t *testing.T) {
	// compensate.tool is absent: the error points at compensate's line.
	in := "upstreams:\n  m:\n    command: [x]\n    tools:\n      t:\n        compensate:\n          args: .args\n"
	_, err := parse([]byte(in), "f.yaml", noEnv)
	want := []string{`f.yaml:6: upstreams.m.tools.t.compensate.tool: required: the tool to call`}
	if got := errLines(err); !slices.Equal(got, want) {
		t.Errorf("errors = %q, want %q", got, want)
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"loopback", "listen: {mcp: \"localhost:7070\", http: \"[::1]:7080\"}\n", nil},
		{"all interfaces", "listen:\n  mcp: 0.0.0.0:7070\n  http: \":7080\"\n  admin: 10.0.0.5:7071\n", []string{
			`agenthelm.yaml:2: listen.mcp: 0.0.0.0:7070 is not a loopback address: other hosts can connect`,
			`agenthelm.yaml:3: listen.http: :7080 is not a loopback address: other hosts can connect`,
			`agenthelm.yaml:4: listen.admin: 10.0.0.5:7071 is not a loopback address: other hosts can connect`}},
		{"hostname", `listen: {mcp: "agenthelm.internal:7070"}`, []string{
			`agenthelm.yaml:1: listen.mcp: agenthelm.internal:7070 is not a loopback address: other hosts can connect`}},
		{"short token", `admin: {token: abc}`, []string{
			`agenthelm.yaml:1: admin.token: is shorter than 16 characters: easy to guess`}},
		{"capture alone", "upstreams:\n  m:\n    command: [x]\n    tools:\n      t:\n        capture: {tool: read}\n", []string{
			`agenthelm.yaml:6: upstreams.m.tools.t.capture: nothing uses it without compensate`}},
		{"endpoint unused", "telemetry:\n  exporter: none\n  otlp_endpoint: http://127.0.0.1:4318\n", []string{
			`agenthelm.yaml:2: telemetry.exporter: is none, so otlp_endpoint is not used`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parse([]byte(tt.in), "agenthelm.yaml", noEnv)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got := c.Warnings(); !slices.Equal(got, tt.want) {
				t.Errorf("Warnings() =\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestValidateFillsEntryDefaults(t *testing.T) {
	in := "upstreams:\n  a: {url: \"http://127.0.0.1:1/mcp\"}\n  b: {url: \"http://127.0.0.1:2/sse\", transport: sse}\n  c:\n    command: [x]\n    tools: {t: {read_only: true}, u: {on_error: continue}}\n"
	c, err := parse([]byte(in), "f", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	for name, u := range c.Upstreams {
		if u.Name != name {
			t.Errorf("Upstreams[%q].Name = %q", name, u.Name)
		}
	}
	if got := c.Upstreams["a"].Transport; got != TransportStreamableHTTP {
		t.Errorf("a.transport = %q, want %q", got, TransportStreamableHTTP)
	}
	if got := c.Upstreams["b"].Transport; got != TransportSSE {
		t.Errorf("b.transport = %q, want %q", got, TransportSSE)
	}
	if got := c.Upstreams["c"].Transport; got != "" {
		t.Errorf("c.transport = %q, want empty", got)
	}
	if got := c.Upstreams["c"].Tools["t"].OnError; got != OnErrorUnwind {
		t.Errorf("t.on_error = %q, want %q", got, OnErrorUnwind)
	}
	if got := c.Upstreams["c"].Tools["u"].OnError; got != OnErrorContinue {
		t.Errorf("u.on_error = %q, want %q", got, OnErrorContinue)
	}
}

func TestValidateCompilesEveryExpr(t *testing.T) {
	in := `
redaction: {paths: [.args.card]}
upstreams:
  pay: {http: "http://127.0.0.1:9000"}
  mem:
    command: [x]
    tools:
      t:
        capture: {tool: read, args: '{path: .args.path}'}
        compensate: {tool: write, args: '{path: .args.path, content: .capture.content}'}
routes:
  - upstream: pay
    method: POST
    path: /v1/charges
    tool: charge
    compensate: {method: POST, path: '"/v1/refunds"', body: '{charge: .response.body.id}', headers: {X-Reason: '"rollback"'}}
`
	c, err := parse([]byte(in), "f", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	tool := c.Upstreams["mem"].Tools["t"]
	route := c.Routes[0].Compensate
	for name, e := range map[string]Expr{
		"redaction.paths[0]": c.Redaction.Paths[0],
		"capture.args":       tool.Capture.Args,
		"compensate.args":    tool.Compensate.Args,
		"route path":         route.Path,
		"route body":         route.Body,
		"route header":       route.Headers["X-Reason"],
	} {
		if e.Code() == nil {
			t.Errorf("%s (%q) was not compiled", name, e.Source)
		}
	}
	got, err := route.Body.Eval(t.Context(), map[string]any{"response": map[string]any{"body": map[string]any{"id": "ch_1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := got.(map[string]any); m["charge"] != "ch_1" {
		t.Errorf("body = %v, want {charge: ch_1}", got)
	}
}

func TestKnownPacksHook(t *testing.T) {
	in := "upstreams:\n  gh:\n    command: [x]\n    packs: [github]\n"
	if _, err := parse([]byte(in), "f", noEnv); err == nil {
		t.Fatal("unknown pack accepted")
	}
	KnownPacks["github"] = true
	defer delete(KnownPacks, "github")
	if _, err := parse([]byte(in), "f", noEnv); err != nil {
		t.Fatalf("registered pack rejected: %v", err)
	}
}

func TestValidateErrorsAreJoined(t *testing.T) {
	c := Default()
	c.Log.Level = "x"
	c.Log.Format = "y"
	err := c.Validate()
	var fe *fieldError
	if !errors.As(err, &fe) {
		t.Fatalf("Validate() = %v, want *fieldError inside", err)
	}
	if u, ok := err.(interface{ Unwrap() []error }); !ok || len(u.Unwrap()) != 2 {
		t.Errorf("Validate() = %v, want two joined errors", err)
	}
}
