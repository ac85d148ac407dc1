package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/approvals"
	"github.com/agenthelm/agenthelm/engine"
	"github.com/agenthelm/agenthelm/policy"
	"github.com/agenthelm/agenthelm/proxy"
	"github.com/agenthelm/agenthelm/saga"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A policy for the item server: create is allowed up to a name length,
// names starting with "x" are held (those starting with "xe" expire after
// 300 ms, for the tests of expiry; the others after a minute, so that a
// busy machine does not expire an approval a test is about to give),
// "fail" is denied.
const gatePolicy = `package agenthelm.authz

default decision := {"allow": false, "require_approval": false, "reasons": ["not allowed"]}

decision := {"allow": true, "require_approval": false, "reasons": []} if {
	input.tool.name == "create"
	not startswith(input.arguments.name, "x")
}

decision := {"allow": false, "require_approval": true, "reasons": ["names starting with x need a person"], "approval_timeout": "300ms"} if {
	input.tool.name == "create"
	startswith(input.arguments.name, "xe") # xena, xerxes: tests of expiry
}

decision := {"allow": false, "require_approval": true, "reasons": ["names starting with x need a person"], "approval_timeout": "60s"} if {
	input.tool.name == "create"
	startswith(input.arguments.name, "x")
	not startswith(input.arguments.name, "xe")
}

decision := {"allow": true, "require_approval": false, "reasons": []} if input.tool.name == "delete"

decision := {"allow": false, "require_approval": false, "reasons": ["fail is forbidden"]} if input.tool.name == "fail"
`

func startGated(t *testing.T, mode string) (*stack, *approvals.Broker) {
	t.Helper()
	return startGatedWith(t, mode, gatePolicy)
}

func startGatedWith(t *testing.T, mode, gatePolicy string) (*stack, *approvals.Broker) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "authz.rego"), []byte(gatePolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	gate, err := policy.New(ctx, policy.Options{Dir: dir, Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	broker := approvals.New(approvals.Options{KeepAliveEvery: 50 * time.Millisecond})
	return newStack(t, "", engine.Options{Gate: gate, Approvals: broker, UnwindOnRejection: true,
		Rules: rules{"create": {Compensate: &saga.Compensator{Tool: "delete", Args: "{name: .args.name}"}}}}, proxy.Options{}), broker
}

func text(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text + "\n")
		}
	}
	return b.String()
}

// notes returns the journal's notes of a saga by type.
func notes(t *testing.T, s *stack) map[string][]json.RawMessage {
	h := only(t, s.j)
	evs, err := s.j.Events(context.Background(), h.Saga)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]json.RawMessage{}
	for _, je := range evs {
		var ev saga.Event
		_ = json.Unmarshal(je.Body, &ev)
		if ev.Kind == saga.EvNote {
			var n struct{ Type string }
			_ = json.Unmarshal(ev.Note, &n)
			out[n.Type] = append(out[n.Type], ev.Note)
		}
	}
	return out
}

func TestGateDeniesHoldsApprovesAndExpires(t *testing.T) {
	s, broker := startGated(t, policy.ModeEnforce)
	s.call(t, "create", map[string]any{"name": "a"})

	res := s.call(t, "fail", nil)
	if !res.IsError || !strings.Contains(text(res), "fail is forbidden") {
		t.Errorf("denied call answer = %q, want the policy's reason", text(res))
	}
	if m, _ := res.Meta["io.agenthelm/refused"].(map[string]any); m["kind"] != "denied" || fmt.Sprint(m["reasons"]) != "[fail is forbidden]" {
		t.Errorf("denied call's refusal marker = %v", res.Meta["io.agenthelm/refused"])
	}

	// Held, then approved by a person while the agent waits.
	done := make(chan *mcp.CallToolResult, 1)
	go func() { done <- s.call(t, "create", map[string]any{"name": "xavier"}) }()
	var req approvals.Request
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if p := broker.Pending(); len(p) == 1 {
			req = p[0]
			break
		}
	}
	if req.ID == "" || req.Tool != "create" || !strings.Contains(string(req.Arguments), "xavier") {
		t.Fatalf("pending approval = %+v", req)
	}
	if _, err := broker.Decide(req.ID, true, "alice", "known customer"); err != nil {
		t.Fatal(err)
	}
	if _, err := broker.Decide(req.ID, false, "bob", "too late"); err == nil {
		t.Error("a second decision was accepted; the first must win")
	}
	if res := <-done; res.IsError {
		t.Errorf("approved call failed: %q", text(res))
	}

	// Held and nobody decides: it expires, which denies, which unwinds.
	res = s.call(t, "create", map[string]any{"name": "xena"})
	if !res.IsError || !strings.Contains(text(res), "expired") {
		t.Errorf("expired call answer = %q", text(res))
	}
	if m, _ := res.Meta["io.agenthelm/refused"].(map[string]any); m["kind"] != "approval_rejected" || m["saga"] == "" {
		t.Errorf("expired call's refusal marker = %v", res.Meta["io.agenthelm/refused"])
	}
	ops, items := s.led.snapshot()
	if strings.Join(ops, ", ") != "create a, create xavier, delete xavier, delete a" || len(items) != 0 {
		t.Errorf("upstream ran %v (items left %v), want the approved create and the unwinding after the expiry", ops, items)
	}
	n := notes(t, s)
	if len(n["decision"]) != 4 || len(n["approval_requested"]) != 2 || len(n["approval_decided"]) != 2 {
		t.Errorf("journal notes: %d decisions, %d requests, %d approvals decided; want 4, 2, 2", len(n["decision"]), len(n["approval_requested"]), len(n["approval_decided"]))
	}
	if d := n["approval_decided"]; len(d) > 0 && !strings.Contains(string(d[0]), `"by":"alice"`) || !strings.Contains(string(d[0]), `"args_digest":"sha256:`) {
		t.Errorf("approval note = %s, want who approved and the argument digest", d[0])
	}
	if h := only(t, s.j); h.Status != string(saga.Compensated) {
		t.Errorf("saga is %s, want compensated after the rejection", h.Status)
	}
}

func TestGateDryRunForwardsAndJournals(t *testing.T) {
	s, broker := startGated(t, policy.ModeDryRun)
	s.call(t, "create", map[string]any{"name": "xavier"}) // would be held
	s.call(t, "fail", nil)                                // would be denied; fails upstream, unwinds
	if p := broker.Pending(); len(p) != 0 {
		t.Errorf("dry-run held %d calls", len(p))
	}
	ops, _ := s.led.snapshot()
	if len(ops) == 0 || ops[0] != "create xavier" {
		t.Errorf("upstream ran %v, want the would-be-held call forwarded", ops)
	}
	n := notes(t, s)
	if len(n["decision"]) != 2 || !strings.Contains(string(n["decision"][0]), `"dry_run":true`) || !strings.Contains(string(n["decision"][1]), `"verdict":"deny"`) {
		t.Errorf("dry-run decisions journaled = %s", n["decision"])
	}
}

// TestApprovalInTheClient: a client that declared elicitation is asked in
// place (rule 23) and its answer decides the held call.
func TestApprovalInTheClient(t *testing.T) {
	for _, approve := range []bool{true, false} {
		// Approvals that expire after a minute: the question's round trip
		// must not race the 300 ms expiry of gatePolicy on a busy machine.
		s, broker := startGatedWith(t, policy.ModeEnforce, slowExpiry)
		var asked atomic.Int32
		client := mcp.NewClient(&mcp.Implementation{Name: "person-at-the-client", Version: "1"}, &mcp.ClientOptions{
			ElicitationHandler: func(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
				asked.Add(1)
				if !strings.Contains(req.Params.Message, "xavier") {
					t.Errorf("elicitation message %q does not show the call", req.Params.Message)
				}
				return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"approve": approve, "reason": "asked in place"}}, nil
			},
		})
		cs, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: s.url}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
		if err != nil {
			t.Fatal(err)
		}
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "create", Arguments: map[string]any{"name": "xavier"}})
		cs.Close()
		if err != nil {
			t.Fatal(err)
		}
		if asked.Load() != 1 {
			t.Errorf("the client was asked %d times, want once", asked.Load())
		}
		if res.IsError == approve {
			t.Errorf("approve=%v: the call's answer isError=%v: %q", approve, res.IsError, text(res))
		}
		if p := broker.Pending(); len(p) != 0 {
			t.Errorf("approvals still pending: %v", p)
		}
		n := notes(t, s)
		if d := n["approval_decided"]; len(d) != 1 || !strings.Contains(string(d[0]), `"by":"client:person-at-the-client"`) {
			t.Errorf("approval note = %s, want the client's decision", d)
		}
	}
}

// TestBudgetCoversTheWholeSaga: input.saga.amounts adds up every step of
// the saga, not only the latest ones the input lists, so a budget cannot
// be spent past its limit in many small calls.
func TestBudgetCoversTheWholeSaga(t *testing.T) {
	s, _ := startGatedWith(t, policy.ModeEnforce, `package agenthelm.authz

default decision := {"allow": true, "require_approval": false, "reasons": []}

spent := sum([a.total | some a in input.saga.amounts; a.tool == "create"; a.status == "succeeded"; a.argument == "amount"])

decision := {"allow": false, "require_approval": false, "reasons": [sprintf("budget: %v spent", [spent])]} if {
	spent + input.arguments.amount > 130
}
`)
	for i := range 130 {
		if res := s.call(t, "create", map[string]any{"name": fmt.Sprintf("n%d", i), "amount": 1}); res.IsError {
			t.Fatalf("call %d within budget: %q", i+1, text(res))
		}
	}
	res := s.call(t, "create", map[string]any{"name": "one-too-many", "amount": 1})
	if !res.IsError || !strings.Contains(text(res), "budget: 130 spent") {
		t.Errorf("call 131 answered %q, want the budget's denial", text(res))
	}
}

// TestRecentCallsSlideWithTheClock: input.saga.recent_calls counts the
// last minute's calls of each tool as the window slides, denied ones not
// counted.
func TestRecentCallsSlideWithTheClock(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, `package agenthelm.authz

default decision := {"allow": true, "require_approval": false, "reasons": []}

decision := {"allow": false, "require_approval": false, "reasons": [sprintf("%d recent", [input.saga.recent_calls["items/create"]])]} if {
	input.saga.recent_calls["items/create"] >= 3
}
`)
	gate, err := policy.New(context.Background(), policy.Options{Dir: dir, Mode: policy.ModeEnforce})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	s := newStack(t, "", engine.Options{Gate: gate, Now: now, Rules: rules{}}, proxy.Options{})
	call := func(name string) *mcp.CallToolResult { return s.call(t, "create", map[string]any{"name": name}) }
	for i := range 3 {
		if res := call(fmt.Sprint("a", i)); res.IsError {
			t.Fatalf("call %d: %q", i+1, text(res))
		}
		advance(10 * time.Second)
	}
	// At t=30s: three calls in the last minute.
	if res := call("b"); !res.IsError || !strings.Contains(text(res), "3 recent") {
		t.Fatalf("fourth call: %q, want denied with 3 recent", text(res))
	}
	// The denial is not counted; at t=65s the first call has left the window.
	advance(35 * time.Second)
	if res := call("c"); res.IsError {
		t.Errorf("after the first call left the window: %q", text(res))
	}
	// Now a1, a2 and c are recent: denied again.
	if res := call("d"); !res.IsError || !strings.Contains(text(res), "3 recent") {
		t.Errorf("with three recent calls again: %q", text(res))
	}
}

// TestUnwindingWithdrawsHeldCalls: when a saga starts unwinding, a call of
// it that waits for approval is rejected at once, instead of keeping the
// unwinding waiting until the approval expires.
func TestUnwindingWithdrawsHeldCalls(t *testing.T) {
	s, broker := startGatedWith(t, policy.ModeEnforce, strings.Replace(gatePolicy,
		`decision := {"allow": false, "require_approval": false, "reasons": ["fail is forbidden"]} if input.tool.name == "fail"`,
		`decision := {"allow": true, "require_approval": false, "reasons": []} if input.tool.name == "fail"`, 1))
	s.call(t, "create", map[string]any{"name": "a"})
	held := make(chan *mcp.CallToolResult, 1)
	go func() { held <- s.call(t, "create", map[string]any{"name": "xavier"}) }() // approval: a minute
	for deadline := time.Now().Add(5 * time.Second); len(broker.Pending()) == 0 && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
	}
	if len(broker.Pending()) != 1 {
		t.Fatal("the call was not held")
	}
	if res := s.call(t, "fail", nil); !res.IsError || !strings.Contains(text(res), "rolled back") {
		t.Errorf("failing call answered %q, want the rollback", text(res))
	}
	res := <-held
	if !res.IsError || !strings.Contains(text(res), "being rolled back") {
		t.Errorf("held call answered %q, want it withdrawn", text(res))
	}
	if ops, _ := s.led.snapshot(); strings.Join(ops, ", ") != "create a, delete a" {
		t.Errorf("upstream ran %v", ops)
	}
	if p := broker.Pending(); len(p) != 0 {
		t.Errorf("approvals still pending: %v", p)
	}
}
