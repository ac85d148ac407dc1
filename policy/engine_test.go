package policy

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agenthelm/agenthelm/toolcall"
)

// shipped is the directory of the policies agenthelm ships.
const shipped = "../policies"

// now is the fixed time of test calls: a Thursday, 09:00 UTC.
var now = time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)

// mcpCall is a tools/call as the MCP front door hands it over.
func mcpCall(upstream, tool, args string) *toolcall.Call {
	params := `{"name":"` + tool + `","arguments":` + args + `}`
	return &toolcall.Call{
		Upstream:  upstream,
		Tool:      tool,
		Arguments: json.RawMessage(args),
		Params:    json.RawMessage(params),
		RequestID: json.RawMessage(`7`),
		Transport: toolcall.Transport{
			Kind: "mcp", Protocol: "streamable-http", ProtocolVersion: "2025-11-25",
			SessionID: "3f1c2a", RemoteAddr: "127.0.0.1:53412", Method: "tools/call",
			Headers: map[string]string{"User-Agent": "claude-code/1.0"},
		},
		Client: toolcall.ClientInfo{Name: "claude-code", Version: "1.0.71"},
	}
}

// httpCall is a REST tool call as the HTTP tool proxy hands it over.
func httpCall(upstream, tool, method, path, body string) *toolcall.Call {
	return &toolcall.Call{
		Upstream:  upstream,
		Tool:      tool,
		Arguments: json.RawMessage(body),
		Transport: toolcall.Transport{
			Kind: "http", Protocol: "http", Method: method, Path: path,
			RemoteAddr: "127.0.0.1:40112",
			Headers:    map[string]string{"Content-Type": "application/json", "X-Agenthelm-Saga": "saga-42"},
		},
	}
}

// Tool kinds as the saga engine resolves them from configuration.
var (
	readOnly      = ToolInfo{ReadOnly: true, Idempotent: true, Annotations: map[string]any{"readOnlyHint": true}}
	compensatable = ToolInfo{HasCompensator: true}
	pivot         = ToolInfo{} // not read-only, no compensator
)

var agent = AgentInfo{ID: "support-bot", Source: AgentFromHeader}

func sagaWith(steps ...StepSummary) SagaInfo {
	return SagaInfo{ID: "saga-42", Steps: steps, ElapsedSeconds: 12.5}
}

func newEngine(t testing.TB, opts Options) *Engine {
	t.Helper()
	e, err := New(context.Background(), opts)
	if err != nil {
		t.Fatalf("New(%+v): %v", opts, err)
	}
	return e
}

// writeFiles writes name -> content under dir.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// policyDir is a temporary policy directory holding files.
func policyDir(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, files)
	return dir
}

func TestShippedPolicyDecisions(t *testing.T) {
	e := newEngine(t, Options{Dir: shipped})
	paid := func(amount string, status string) StepSummary {
		return NewStepSummary("create_payment", "payments", status, json.RawMessage(`{"amount":`+amount+`}`), now.Add(-time.Minute))
	}
	var recent []StepSummary
	for i := range 30 {
		recent = append(recent, NewStepSummary("run_command", "shell", StepSucceeded, json.RawMessage(`{"command":"ls"}`), now.Add(-time.Duration(i+1)*time.Second)))
	}
	shell := compensatable // a shell tool with a (configured) compensator, so only deny rules matter

	tests := []struct {
		name      string
		call      *toolcall.Call
		tool      ToolInfo
		saga      SagaInfo
		verdict   string
		reason    string // a substring of one of the reasons
		approvers []string
		timeout   time.Duration
		rules     string // labels["rules"]
	}{
		{name: "read in workspace", call: mcpCall("filesystem", "read_text_file", `{"path":"/workspace/README.md"}`), tool: readOnly,
			verdict: VerdictAllow},
		{name: "compensatable write in workspace", call: mcpCall("filesystem", "write_file", `{"path":"/workspace/notes.md","content":"hi"}`), tool: compensatable,
			verdict: VerdictAllow},
		{name: "write outside roots", call: mcpCall("filesystem", "write_file", `{"path":"/etc/cron.d/x","content":"* * * * * root sh"}`), tool: compensatable,
			verdict: VerdictDeny, reason: `path "/etc/cron.d/x" is outside the allowed roots`, rules: "deny.path"},
		{name: "path traversal", call: mcpCall("filesystem", "read_text_file", `{"path":"/workspace/../../etc/shadow"}`), tool: readOnly,
			verdict: VerdictDeny, rules: "deny.path"},
		{name: "recursive delete", call: mcpCall("shell", "run_command", `{"command":"rm -rf / --no-preserve-root"}`), tool: shell,
			verdict: VerdictDeny, reason: "recursive delete", rules: "deny.shell_command"},
		{name: "harmless shell command without compensator", call: mcpCall("shell", "run_command", `{"command":"ls -la"}`), tool: pivot,
			verdict: VerdictRequireApproval, reason: "shell/run_command cannot be undone", approvers: []string{"oncall"}, timeout: 15 * time.Minute, rules: "irreversible"},
		{name: "sql drop", call: mcpCall("postgres", "execute_sql", `{"sql":"DROP TABLE customers;"}`), tool: compensatable,
			verdict: VerdictDeny, reason: "the SQL statement is not allowed: DROP", rules: "deny.sql"},
		{name: "denied tool", call: mcpCall("github", "delete_repository", `{"owner":"acme","repo":"web"}`), tool: compensatable,
			verdict: VerdictDeny, reason: "github/delete_repository is denied: it deletes a repository", rules: "deny.tool"},
		{name: "small charge", call: mcpCall("payments", "charge_customer", `{"customer":"cus_1","amount":120,"currency":"usd"}`), tool: compensatable,
			verdict: VerdictAllow},
		{name: "large charge", call: mcpCall("payments", "charge_customer", `{"customer":"cus_1","amount":750,"currency":"usd"}`), tool: compensatable,
			verdict: VerdictRequireApproval, reason: "a charge of 750 is above 500", approvers: []string{"payments-oncall"}, timeout: 30 * time.Minute, rules: "payments.large_charge"},
		{name: "large charge as string", call: mcpCall("payments", "charge_customer", `{"customer":"cus_1","amount":"750.00"}`), tool: compensatable,
			verdict: VerdictRequireApproval, approvers: []string{"payments-oncall"}, timeout: 30 * time.Minute, rules: "payments.large_charge"},
		{name: "large charge exact decimal", call: mcpCall("payments", "charge_customer", `{"customer":"cus_1","amount":500.000000000000000001}`), tool: compensatable,
			verdict: VerdictRequireApproval, rules: "payments.large_charge"},
		{name: "charge with unreadable amount", call: mcpCall("payments", "charge_customer", `{"customer":"cus_1","amount":"lots"}`), tool: compensatable,
			verdict: VerdictDeny, reason: `argument "amount" must be a number`, rules: "budget.amount,payments.amount"},
		{name: "irreversible large charge", call: mcpCall("payments", "charge_customer", `{"customer":"cus_1","amount":900}`), tool: pivot,
			verdict: VerdictRequireApproval, approvers: []string{"oncall", "payments-oncall"}, timeout: 15 * time.Minute, rules: "irreversible,payments.large_charge"},
		{name: "saga budget soft limit", call: mcpCall("payments", "create_payment", `{"amount":300}`), tool: compensatable,
			saga:    sagaWith(paid("500", StepSucceeded), paid("400", StepPending), paid("5000", StepCompensated)),
			verdict: VerdictRequireApproval, reason: "would spend 1200 in total, above 1000", approvers: []string{"finance-oncall"}, timeout: time.Hour, rules: "budget.soft_limit"},
		{name: "saga budget hard limit", call: mcpCall("payments", "create_payment", `{"amount":3000}`), tool: compensatable,
			saga:    sagaWith(paid("2500", StepSucceeded)),
			verdict: VerdictDeny, reason: "above the hard limit of 5000", rules: "budget.hard_limit"},
		{name: "http route in budget", call: httpCall("payments", "charge", "POST", "/v1/charges", `{"amount":200,"currency":"eur"}`), tool: compensatable,
			saga:    sagaWith(paid("900", StepSucceeded)),
			verdict: VerdictRequireApproval, reason: "would spend 1100 in total", rules: "budget.soft_limit"},
		{name: "rate limit", call: mcpCall("shell", "run_command", `{"command":"ls"}`), tool: shell,
			saga:    sagaWith(recent...),
			verdict: VerdictDeny, reason: "31 calls in the last minute in saga saga-42, the limit is 30", rules: "budget.rate"},
		{name: "exempt irreversible tool", call: mcpCall("slack", "post_message", `{"channel":"#ops","text":"deployed"}`), tool: pivot,
			verdict: VerdictAllow},
		{name: "no arguments", call: mcpCall("clock", "now", `null`), tool: readOnly,
			verdict: VerdictAllow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tool := tt.tool
			saga := tt.saga
			if saga.ID == "" {
				saga = sagaWith()
			}
			d := e.Decide(context.Background(), NewInput(tt.call, tool, agent, saga, now))
			if d.Err != nil {
				t.Fatalf("Decide(%s) failed closed: %v", tt.call.Tool, d.Err)
			}
			if got := d.Verdict(); got != tt.verdict {
				t.Fatalf("Decide(%s %s) = %s %q, want %s", tt.call.Tool, tt.call.Arguments, got, d.Reasons, tt.verdict)
			}
			if tt.reason != "" && !strings.Contains(strings.Join(d.Reasons, "\n"), tt.reason) {
				t.Errorf("Decide(%s) reasons = %q, want one containing %q", tt.call.Tool, d.Reasons, tt.reason)
			}
			if tt.verdict == VerdictDeny && len(d.Reasons) == 0 {
				t.Errorf("Decide(%s): a deny without reasons", tt.call.Tool)
			}
			if tt.approvers != nil && !cmp.Equal(d.Approvers, tt.approvers) {
				t.Errorf("Decide(%s) approvers = %q, want %q", tt.call.Tool, d.Approvers, tt.approvers)
			}
			if tt.timeout != 0 && d.ApprovalTimeout != tt.timeout {
				t.Errorf("Decide(%s) approval timeout = %v, want %v", tt.call.Tool, d.ApprovalTimeout, tt.timeout)
			}
			if got := d.Labels["rules"]; got != tt.rules {
				t.Errorf("Decide(%s) labels[rules] = %q, want %q", tt.call.Tool, got, tt.rules)
			}
			if d.Allow && d.RequireApproval {
				t.Errorf("Decide(%s): Allow and RequireApproval both set", tt.call.Tool)
			}
			if d.DryRun || d.ID == "" || d.Revision != e.Status().Revision || d.Duration <= 0 || len(d.Raw) == 0 {
				t.Errorf("Decide(%s) = %+v: want enforce mode, an id, the active revision, a duration and the raw object", tt.call.Tool, d)
			}
		})
	}
}

func TestFailClosed(t *testing.T) {
	const head = "package agenthelm.authz\n\n"
	tests := []struct {
		name    string
		policy  string
		args    string
		err     error  // errors.Is
		reason  string // substring of the single reason
		verdict string // when the decision is well-formed
	}{
		{name: "undefined without default", policy: `decision := {"allow": true} if input.tool.name == "other"`,
			err: ErrUndefined, reason: "undefined"},
		{name: "conflicting values", policy: "decision := {\"allow\": true} if input.tool.name != \"\"\n\ndecision := {\"allow\": false} if input.saga.id != \"\"",
			err: ErrEvaluation, reason: "eval_conflict_error"},
		{name: "built-in error", policy: `decision := {"allow": to_number(input.arguments.n) > 0}`, args: `{"n":"many"}`,
			err: ErrEvaluation, reason: "to_number"},
		{name: "type error in a deny rule", policy: "default decision := {\"allow\": true}\n\ndecision := {\"allow\": false} if lower(input.arguments.path) == \"/etc/passwd\"", args: `{"path":7}`,
			err: ErrEvaluation, reason: "lower: operand 1 must be string but got number"},
		{name: "not an object", policy: `decision := true`, err: ErrMalformed, reason: "want an object, got boolean"},
		{name: "array", policy: `decision := [true]`, err: ErrMalformed, reason: "got array"},
		{name: "allow as string", policy: `decision := {"allow": "yes"}`, err: ErrMalformed, reason: `"allow" must be a boolean, got string`},
		{name: "require_approval as string", policy: `decision := {"allow": false, "require_approval": "true"}`, err: ErrMalformed, reason: `"require_approval" must be a boolean`},
		{name: "reasons as string", policy: `decision := {"allow": true, "reasons": "ok"}`, err: ErrMalformed, reason: `"reasons" must be an array of strings, got string`},
		{name: "reasons with a number", policy: `decision := {"allow": true, "reasons": ["ok", 1]}`, err: ErrMalformed, reason: `"reasons"[1] must be a string, got number`},
		{name: "approvers as object", policy: `decision := {"allow": true, "approvers": {"a": 1}}`, err: ErrMalformed, reason: `"approvers" must be an array`},
		{name: "timeout as number", policy: `decision := {"allow": false, "require_approval": true, "approval_timeout": 1800}`, err: ErrMalformed, reason: `"approval_timeout" must be a duration string`},
		{name: "timeout unparsable", policy: `decision := {"allow": false, "require_approval": true, "approval_timeout": "soon"}`, err: ErrMalformed, reason: `"soon" is not a positive duration`},
		{name: "timeout negative", policy: `decision := {"allow": false, "require_approval": true, "approval_timeout": "-5m"}`, err: ErrMalformed, reason: "not a positive duration"},
		{name: "label not a string", policy: `decision := {"allow": true, "labels": {"risk": 3}}`, err: ErrMalformed, reason: `"labels.risk" must be a string, got number`},
		{name: "invalid arguments", policy: `decision := {"allow": true}`, args: `{"a":`, err: ErrInput, reason: "input.arguments"},

		// Well-formed decisions at the edges of the contract.
		{name: "empty object denies", policy: `decision := {}`, verdict: VerdictDeny, reason: "no reason given"},
		{name: "approval wins over allow", policy: `decision := {"allow": true, "require_approval": true}`, verdict: VerdictRequireApproval},
		{name: "reasons as a set", policy: `decision := {"allow": false, "reasons": {"b", "a"}}`, verdict: VerdictDeny, reason: "a"},
		{name: "extra fields are kept in raw", policy: `decision := {"allow": true, "ticket": "SEC-1"}`, verdict: VerdictAllow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := policyDir(t, map[string]string{"authz.rego": head + tt.policy + "\n"})
			e := newEngine(t, Options{Dir: dir})
			args := tt.args
			if args == "" {
				args = `{}`
			}
			d := e.Decide(context.Background(), NewInput(mcpCall("files", "write", args), pivot, agent, sagaWith(), now))
			if tt.err != nil {
				if !errors.Is(d.Err, tt.err) {
					t.Fatalf("Decide(%s).Err = %v, want %v", tt.name, d.Err, tt.err)
				}
				if d.Verdict() != VerdictDeny || d.Allow || d.RequireApproval || d.Approvers != nil || d.ApprovalTimeout != 0 || d.Labels != nil {
					t.Fatalf("Decide(%s) = %+v, want a plain deny", tt.name, d)
				}
				if len(d.Reasons) != 1 || !strings.Contains(d.Reasons[0], tt.reason) || !strings.Contains(d.Reasons[0], "failed closed") {
					t.Fatalf("Decide(%s).Reasons = %q, want one failed-closed reason containing %q", tt.name, d.Reasons, tt.reason)
				}
				return
			}
			if d.Err != nil {
				t.Fatalf("Decide(%s).Err = %v, want none", tt.name, d.Err)
			}
			if d.Verdict() != tt.verdict || (tt.reason != "" && !strings.Contains(strings.Join(d.Reasons, ","), tt.reason)) {
				t.Fatalf("Decide(%s) = %s %q, want %s with a reason containing %q", tt.name, d.Verdict(), d.Reasons, tt.verdict, tt.reason)
			}
			if d.Allow && d.RequireApproval {
				t.Fatalf("Decide(%s): Allow and RequireApproval both set", tt.name)
			}
		})
	}
}

func TestFailClosedOnCancelledContext(t *testing.T) {
	e := newEngine(t, Options{Dir: shipped})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d := e.Decide(ctx, NewInput(mcpCall("filesystem", "read_text_file", `{"path":"/workspace/a"}`), readOnly, agent, sagaWith(), now))
	if d.Verdict() != VerdictDeny || !errors.Is(d.Err, ErrEvaluation) {
		t.Fatalf("Decide(cancelled) = %s, %v; want deny with an evaluation error", d.Verdict(), d.Err)
	}
}

func TestRawKeepsTheDecisionObject(t *testing.T) {
	dir := policyDir(t, map[string]string{"authz.rego": "package agenthelm.authz\n\ndecision := {\"allow\": true, \"ticket\": \"SEC-1\", \"labels\": {\"team\": \"payments\"}}\n"})
	e := newEngine(t, Options{Dir: dir})
	d := e.Decide(context.Background(), NewInput(mcpCall("a", "b", `{}`), pivot, agent, sagaWith(), now))
	var got map[string]any
	if err := json.Unmarshal(d.Raw, &got); err != nil {
		t.Fatalf("Raw %s: %v", d.Raw, err)
	}
	want := map[string]any{"allow": true, "ticket": "SEC-1", "labels": map[string]any{"team": "payments"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Raw (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"team": "payments"}, d.Labels); diff != "" {
		t.Errorf("Labels (-want +got):\n%s", diff)
	}
}

func TestDryRun(t *testing.T) {
	e := newEngine(t, Options{Dir: shipped, Mode: ModeDryRun})
	if got := e.Status().Mode; got != ModeDryRun {
		t.Fatalf("Status().Mode = %q, want %q", got, ModeDryRun)
	}
	for _, tt := range []struct {
		call    *toolcall.Call
		tool    ToolInfo
		verdict string
	}{
		{mcpCall("shell", "run_command", `{"command":"rm -rf /"}`), compensatable, VerdictDeny},
		{mcpCall("payments", "charge_customer", `{"amount":750}`), compensatable, VerdictRequireApproval},
		{mcpCall("filesystem", "read_text_file", `{"path":"/workspace/a"}`), readOnly, VerdictAllow},
	} {
		d := e.Decide(context.Background(), NewInput(tt.call, tt.tool, agent, sagaWith(), now))
		if !d.DryRun || d.Verdict() != tt.verdict {
			t.Errorf("dry-run Decide(%s) = %s (DryRun %v), want %s with DryRun", tt.call.Tool, d.Verdict(), d.DryRun, tt.verdict)
		}
	}
	// A failed-closed decision is a dry-run one too.
	d := e.Decide(context.Background(), NewInput(mcpCall("shell", "run_command", `{`), compensatable, agent, sagaWith(), now))
	if !d.DryRun || d.Err == nil || d.Verdict() != VerdictDeny {
		t.Errorf("dry-run Decide(bad input) = %s, DryRun %v, Err %v; want a dry-run deny with Err", d.Verdict(), d.DryRun, d.Err)
	}
}

func TestNewRejectsBadPolicies(t *testing.T) {
	const ok = "package agenthelm.authz\n\ndefault decision := {\"allow\": false}\n"
	tests := []struct {
		name  string
		files map[string]string
		want  []string // substrings of the error
	}{
		{"syntax error", map[string]string{"authz.rego": ok, "extra.rego": "package agenthelm.authz\n\nallow if {\n\tinput.x ==\n}\n"},
			[]string{"extra.rego:5:1: rego_parse_error"}},
		{"compile error", map[string]string{"authz.rego": ok, "extra.rego": "package agenthelm.authz\n\nallow if no_such_function(input.x)\n"},
			[]string{"extra.rego:3:10: rego_type_error: undefined function no_such_function"}},
		{"unsafe variable", map[string]string{"authz.rego": ok, "extra.rego": "package agenthelm.authz\n\nallow if x > 1\n"},
			[]string{"extra.rego:3:10: rego_unsafe_var_error: var x is unsafe"}},
		{"no decision rule", map[string]string{"authz.rego": "package agenthelm.authz\n\nallow := true\n"},
			[]string{"no rule `decision` in package agenthelm.authz", "authz.rego"}},
		{"wrong package", map[string]string{"authz.rego": "package authz\n\ndecision := {\"allow\": true}\n"},
			[]string{"no rule `decision`"}},
		{"rego v0 syntax", map[string]string{"authz.rego": "package agenthelm.authz\n\ndecision = {\"allow\": true} { true }\n"},
			[]string{"authz.rego:3:", "rego_parse_error"}},
		{"data not an object", map[string]string{"authz.rego": ok, "data.json": `[1, 2]`},
			[]string{"data.json: the document must be an object"}},
		{"data conflict", map[string]string{"authz.rego": ok, "data.json": `{"a": {"b": 1}}`, "a/data.yaml": "b: 2\n"},
			[]string{"data.json: conflicting values at data.a.b"}},
		{"bad json", map[string]string{"authz.rego": ok, "data.json": `{"a": }`}, []string{"data.json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := policyDir(t, tt.files)
			_, err := New(context.Background(), Options{Dir: dir})
			if err == nil {
				t.Fatalf("New(%s) succeeded, want an error", tt.name)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New(%s) error = %v\nwant it to contain %q", tt.name, err, w)
				}
			}
		})
	}

	for _, opts := range []Options{{}, {Dir: t.TempDir(), Mode: "audit"}, {Dir: filepath.Join(t.TempDir(), "missing")}} {
		if _, err := New(context.Background(), opts); err == nil {
			t.Errorf("New(%+v) succeeded, want an error", opts)
		}
	}
}

func TestDataDirectoryConvention(t *testing.T) {
	dir := policyDir(t, map[string]string{
		"authz.rego": `package agenthelm.authz

decision := {"allow": true, "labels": {"limit": sprintf("%v", [data.agenthelm.limits.max]), "team": data.teams.owner, "region": data.agenthelm.region}}
`,
		"data.json":                    `{"agenthelm": {"region": "eu"}}`,
		"agenthelm/limits/data.yaml":   "max: 5\n",
		"teams/data.yml":               "owner: payments\n",
		"teams/notes.json":             `{"ignored": true}`,
		".hidden/data.json":            `{"ignored": true}`,
		"README.md":                    "not policy",
		"agenthelm/limits/limits.rego": "package agenthelm.limits\n\ndouble := data.agenthelm.limits.max * 2\n",
	})
	e := newEngine(t, Options{Dir: dir})
	d := e.Decide(context.Background(), NewInput(mcpCall("a", "b", `{}`), pivot, agent, sagaWith(), now))
	want := map[string]string{"limit": "5", "team": "payments", "region": "eu"}
	if diff := cmp.Diff(want, d.Labels); diff != "" || d.Err != nil {
		t.Errorf("labels from data (-want +got):\n%s (err %v)", diff, d.Err)
	}
	wantFiles := []string{"agenthelm/limits/data.yaml", "agenthelm/limits/limits.rego", "authz.rego", "data.json", "teams/data.yml"}
	if diff := cmp.Diff(wantFiles, e.Status().Files); diff != "" {
		t.Errorf("Status().Files (-want +got):\n%s", diff)
	}
}

func TestDecisionIDsAreUnique(t *testing.T) {
	e := newEngine(t, Options{Dir: shipped})
	in := NewInput(mcpCall("filesystem", "read_text_file", `{"path":"/workspace/a"}`), readOnly, agent, sagaWith(), now)
	seen := map[string]bool{}
	for range 1000 {
		d := e.Decide(context.Background(), in)
		if seen[d.ID] || len(d.ID) != 36 || d.ID[14] != '7' {
			t.Fatalf("decision id %q: repeated or not a UUIDv7", d.ID)
		}
		seen[d.ID] = true
	}
}

// Decide runs while reloads swap revisions: every decision comes from one
// whole revision (run with -race).
func TestDecideDuringReload(t *testing.T) {
	policy := func(allow bool) map[string]string {
		v := "false"
		if allow {
			v = "true"
		}
		return map[string]string{"authz.rego": "package agenthelm.authz\n\ndecision := {\"allow\": " + v + ", \"labels\": {\"v\": \"" + v + "\"}}\n"}
	}
	dir := policyDir(t, policy(true))
	e := newEngine(t, Options{Dir: dir})
	revs := map[string]string{e.Status().Revision: "true"}
	var mu sync.Mutex

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for range 2 {
		wg.Go(func() {
			in := NewInput(mcpCall("a", "b", `{}`), pivot, agent, sagaWith(), now)
			for ctx.Err() == nil {
				d := e.Decide(context.Background(), in)
				mu.Lock()
				want, known := revs[d.Revision]
				mu.Unlock()
				if d.Err != nil || !known || d.Labels["v"] != want {
					errs <- d.Revision + " " + d.Labels["v"]
					return
				}
			}
		})
	}
	for i := range 20 {
		p := policy(i%2 == 0)
		writeFiles(t, dir, p)
		// Learn the revision before it can be activated.
		snap, err := readDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		revs[snap.revision()] = map[bool]string{true: "true", false: "false"}[i%2 == 0]
		mu.Unlock()
		if err := e.Reload(context.Background()); err != nil {
			t.Fatalf("Reload: %v", err)
		}
	}
	cancel()
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("decision from an unknown or mixed revision: %s", e)
	}
}

func TestPolicyDirectoryBehindSymlink(t *testing.T) {
	real := policyDir(t, map[string]string{"authz.rego": allowPolicy, "data.json": allowData, "sub/data.json": `{"x": 1}`})
	link := filepath.Join(t.TempDir(), "policies")
	if err := os.Symlink(real, link); err != nil {
		t.Skip(err)
	}
	e := newEngine(t, Options{Dir: link})
	if diff := cmp.Diff([]string{"authz.rego", "data.json", "sub/data.json"}, e.Status().Files); diff != "" {
		t.Errorf("Status().Files (-want +got):\n%s", diff)
	}
}

// authz.rego composes whatever rule files are present: each subset of the
// shipped ones loads and decides.
func TestShippedAuthzComposesAnySubset(t *testing.T) {
	others := []string{"irreversible.rego", "deny.rego", "budget.rego", "payments.rego"}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(shipped, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for mask := range 1 << len(others) {
		files := map[string]string{"authz.rego": read("authz.rego"), "data.json": read("data.json")}
		var names []string
		for i, f := range others {
			if mask&(1<<i) != 0 {
				files[f], names = read(f), append(names, f)
			}
		}
		e, err := New(context.Background(), Options{Dir: policyDir(t, files)})
		if err != nil {
			t.Errorf("authz.rego with %v: %v", names, err)
			continue
		}
		if d := e.Decide(context.Background(), lightInput()); d.Err != nil || d.Verdict() != VerdictAllow {
			t.Errorf("authz.rego with %v: Decide = %s %v, want allow", names, d.Verdict(), d.Err)
		}
	}
}
