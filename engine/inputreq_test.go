package engine_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/engine"
	"github.com/agenthelm/agenthelm/proxy"
	"github.com/agenthelm/agenthelm/saga"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// slowExpiry is gatePolicy with approvals that expire after a minute, not
// 300 ms: these tests make several round trips before the decision.
var slowExpiry = strings.Replace(gatePolicy, `"approval_timeout": "300ms"`, `"approval_timeout": "60s"`, 1)

// client2026 connects a 2026-07-28 client that declares elicitation. With
// answer nil its multi round-trip handling is off: the test sees the
// input_required results and retries by hand.
func client2026(t *testing.T, s *stack, name string, answer func(*mcp.ElicitRequest) *mcp.ElicitResult) *mcp.ClientSession {
	t.Helper()
	opts := &mcp.ClientOptions{
		ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			if answer == nil {
				t.Error("the client was asked, but this test answers by hand")
				return &mcp.ElicitResult{Action: "cancel"}, nil
			}
			return answer(req), nil
		},
	}
	if answer == nil {
		opts.MultiRoundTrip = &mcp.MultiRoundTripOptions{Disabled: true}
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: name, Version: "1"}, opts).
		Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: s.url}, &mcp.ClientSessionOptions{ProtocolVersion: "2026-07-28"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// TestInputRequiredApproval: a 2026-07-28 client that declared elicitation
// gets input_required for a held call, asks its user, and retries; the
// answer decides the approval (rule 23).
func TestInputRequiredApproval(t *testing.T) {
	for _, approve := range []bool{true, false} {
		s, broker := startGatedWith(t, "enforce", slowExpiry)
		var asked atomic.Int32
		cs := client2026(t, s, "person-at-the-client", func(req *mcp.ElicitRequest) *mcp.ElicitResult {
			asked.Add(1)
			if !strings.Contains(req.Params.Message, "xavier") {
				t.Errorf("elicitation message %q does not show the call", req.Params.Message)
			}
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"approve": approve, "reason": "asked in place"}}
		})
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "create", Arguments: map[string]any{"name": "xavier"}})
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
		ops, _ := s.led.snapshot()
		if want := map[bool]int{true: 1, false: 0}[approve]; len(ops) != want {
			t.Errorf("approve=%v: upstream ran %v, want %d call", approve, ops, want)
		}
		n := notes(t, s)
		if d := n["approval_decided"]; len(d) != 1 || !strings.Contains(string(d[0]), `"by":"client:person-at-the-client"`) {
			t.Errorf("approval notes = %s, want one decision by the client", d)
		}
		if len(n["approval_requested"]) != 1 {
			t.Errorf("approval requests journaled: %d, want 1", len(n["approval_requested"]))
		}
	}
}

// TestInputRequiredOutOfBand: the user at the client dismisses the
// question; the retry then waits for an approver out of band.
func TestInputRequiredOutOfBand(t *testing.T) {
	s, broker := startGatedWith(t, "enforce", slowExpiry)
	cs := client2026(t, s, "agent", func(*mcp.ElicitRequest) *mcp.ElicitResult { return &mcp.ElicitResult{Action: "cancel"} })
	go func() {
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if p := broker.Pending(); len(p) == 1 {
				_, _ = broker.Decide(p[0].ID, true, "alice", "fine")
				return
			}
		}
	}()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "create", Arguments: map[string]any{"name": "xavier"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.IsError {
		t.Fatalf("approved out of band, the call failed: %q", text(res))
	}
	if d := notes(t, s)["approval_decided"]; len(d) != 1 || !strings.Contains(string(d[0]), `"by":"alice"`) {
		t.Errorf("approval notes = %s, want alice's decision", d)
	}
}

// TestInputRequiredStateIsProtected: the request state is bound to the
// call, single-use, and cannot be forged.
func TestInputRequiredStateIsProtected(t *testing.T) {
	s, broker := startGatedWith(t, "enforce", slowExpiry)
	cs := client2026(t, s, "agent", nil)
	ctx := context.Background()
	args := map[string]any{"name": "xavier"}
	first, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "create", Arguments: args})
	if err != nil {
		t.Fatal(err)
	}
	if !first.NeedsInput() || first.RequestState == "" || first.InputRequests["agenthelm_approval"] == nil {
		t.Fatalf("held call answered %+v, want input_required with agenthelm_approval", first)
	}
	if p := broker.Pending(); len(p) != 1 {
		t.Fatalf("pending approvals: %d, want the held call's", len(p))
	}
	accept := mcp.InputResponseMap{"agenthelm_approval": &mcp.ElicitResult{Action: "accept", Content: map[string]any{"approve": true}}}
	retry := func(state string, args map[string]any) *mcp.CallToolResult {
		t.Helper()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "create", Arguments: args, InputResponses: accept, RequestState: state})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	forged := first.RequestState[:len(first.RequestState)-3] + "AAA"
	if res := retry(forged, args); !res.IsError || !strings.Contains(text(res), "not issued by this agenthelm") {
		t.Errorf("forged state answered %q", text(res))
	}
	if res := retry(first.RequestState, map[string]any{"name": "xylophone"}); !res.IsError || !strings.Contains(text(res), "different call") {
		t.Errorf("state reused for other arguments answered %q", text(res))
	}
	intruder := client2026(t, s, "intruder", nil)
	res, err := intruder.CallTool(ctx, &mcp.CallToolParams{Name: "create", Arguments: args, InputResponses: accept, RequestState: first.RequestState})
	if err != nil || !res.IsError || !strings.Contains(text(res), "another agent") {
		t.Errorf("state presented by another agent answered %q, %v", text(res), err)
	}
	if ops, _ := s.led.snapshot(); len(ops) != 0 {
		t.Fatalf("upstream ran %v before the approval", ops)
	}
	if res := retry(first.RequestState, args); res.IsError {
		t.Fatalf("approved retry failed: %q", text(res))
	}
	if res := retry(first.RequestState, args); !res.IsError || !strings.Contains(text(res), "already used") && !strings.Contains(text(res), "no longer pending") {
		t.Errorf("replayed state answered %q, want it refused", text(res))
	}
	if ops, _ := s.led.snapshot(); strings.Join(ops, ", ") != "create xavier" {
		t.Errorf("upstream ran %v, want the approved call once", ops)
	}
}

// TestInputRequiredNeverRetried: the client never comes back; the approval
// expires, and the expiry is journaled as a denied step that unwinds the
// saga, as for a call held on the line.
func TestInputRequiredNeverRetried(t *testing.T) {
	s, _ := startGated(t, "enforce")
	s.call(t, "create", map[string]any{"name": "a"}) // the 2025 client: step 1
	cs := client2026(t, s, "agent", nil)
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "create", Arguments: map[string]any{"name": "xena"}})
	if err != nil || !res.NeedsInput() {
		t.Fatalf("held call answered %+v, %v; want input_required", res, err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if h := only(t, s.j); h.Status == string(saga.Compensated) {
			break
		}
	}
	if h := only(t, s.j); h.Status != string(saga.Compensated) {
		t.Fatalf("saga is %s, want compensated after the unused approval expired", h.Status)
	}
	ops, _ := s.led.snapshot()
	if strings.Join(ops, ", ") != "create a, delete a" {
		t.Errorf("upstream ran %v", ops)
	}
	n := notes(t, s)
	if d := n["approval_decided"]; len(d) != 1 || !strings.Contains(string(d[0]), `"expired":true`) {
		t.Errorf("approval notes = %s, want the expiry", d)
	}
}

// TestUpstreamInputRequired: an upstream's own input_required result is a
// step that did nothing (never compensated); the client's retry, with the
// upstream's request state passed through untouched, is the step that
// does the work.
func TestUpstreamInputRequired(t *testing.T) {
	undo := &saga.Compensator{Tool: "delete", Args: "{name: .args.name}"}
	s := newStack(t, "", engine.Options{Rules: rules{"confirm": {Compensate: undo}, "create": {Compensate: undo}}}, proxy.Options{})
	var asked atomic.Int32
	cs := client2026(t, s, "agent", func(*mcp.ElicitRequest) *mcp.ElicitResult {
		asked.Add(1)
		return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"ok": true}}
	})
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "confirm", Arguments: map[string]any{"name": "c"}})
	if err != nil || res.IsError || asked.Load() != 1 {
		t.Fatalf("confirm answered %+v, %v after %d questions", res, err, asked.Load())
	}
	res, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "fail"})
	if err != nil || !res.IsError {
		t.Fatalf("fail answered %+v, %v", res, err)
	}
	ops, items := s.led.snapshot()
	if strings.Join(ops, ", ") != "confirm c, delete c" || len(items) != 0 {
		t.Errorf("upstream ran %v (items left %v), want the confirmed create undone once", ops, items)
	}
	sg, err := s.e.Load(context.Background(), only(t, s.j).Saga)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, st := range sg.Steps {
		got = append(got, st.Tool+":"+string(st.Status)+":"+string(st.Comp.Status))
	}
	if want := "confirm:input_required:, confirm:succeeded:compensated, fail:tool_error:"; strings.Join(got, ", ") != want {
		t.Errorf("steps = %s, want %s", strings.Join(got, ", "), want)
	}
}

// TestUpstreamInputRequiredKeepsApproval: a held call that a person
// approved, and that the upstream then answers input_required (its own
// question), is not held a second time when the client retries with the
// upstream's requestState: the approval carries over, journaled as such,
// while the policy still decides the retry. A state presented with other
// arguments carries nothing.
func TestUpstreamInputRequiredKeepsApproval(t *testing.T) {
	held := slowExpiry + `
decision := {"allow": false, "require_approval": true, "reasons": ["confirmations need a person"], "approval_timeout": "60s"} if input.tool.name == "confirm"
`
	s, broker := startGatedWith(t, "enforce", held)
	var approvalsAsked, upstreamAsked atomic.Int32
	cs := client2026(t, s, "agent", func(req *mcp.ElicitRequest) *mcp.ElicitResult {
		if strings.HasPrefix(req.Params.Message, "create ") { // the upstream's own question
			upstreamAsked.Add(1)
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"ok": true}}
		}
		approvalsAsked.Add(1)
		return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"approve": true}}
	})
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "confirm", Arguments: map[string]any{"name": "c"}})
	if err != nil || res.IsError {
		t.Fatalf("confirm answered %+v, %v", res, err)
	}
	if approvalsAsked.Load() != 1 || upstreamAsked.Load() != 1 {
		t.Errorf("the client was asked for approval %d times and by the upstream %d times, want once each", approvalsAsked.Load(), upstreamAsked.Load())
	}
	if ops, _ := s.led.snapshot(); strings.Join(ops, ", ") != "confirm c" {
		t.Errorf("upstream ran %v, want confirm c once", ops)
	}
	n := notes(t, s)
	if d := n["approval_decided"]; len(d) != 2 || !strings.Contains(string(d[1]), "carried over") || !strings.Contains(string(d[1]), `"by":"client:agent"`) {
		t.Errorf("approval notes = %s, want the client's decision, then the same approval carried over", d)
	}
	// Three calls reached agenthelm: the first (answered input_required
	// for the approval), its retry with agenthelm's state, and the retry
	// with the upstream's; the policy decided each.
	if got := len(n["decision"]); got != 3 {
		t.Errorf("%d policy decisions journaled, want one per call (3)", got)
	}

	// The upstream's state with other arguments: held anew.
	raw := mcp.InputResponseMap{"sure": &mcp.ElicitResult{Action: "accept", Content: map[string]any{"ok": true}}}
	go func() {
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if p := broker.Pending(); len(p) == 1 {
				_, _ = broker.Decide(p[0].ID, false, "alice", "not that one")
				return
			}
		}
	}()
	cs2 := client2026(t, s, "agent", func(*mcp.ElicitRequest) *mcp.ElicitResult { return &mcp.ElicitResult{Action: "cancel"} })
	res, err = cs2.CallTool(context.Background(), &mcp.CallToolParams{Name: "confirm", Arguments: map[string]any{"name": "d"}, InputResponses: raw, RequestState: "upstream-state"})
	if err != nil || !res.IsError {
		t.Errorf("a retry with another call's arguments answered %+v, %v; want it held and rejected", res, err)
	}
}
