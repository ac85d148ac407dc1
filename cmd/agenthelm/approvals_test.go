package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/approvals"
	"github.com/agenthelm/agenthelm/engine"
	"github.com/agenthelm/agenthelm/examples/toolservers"
	"github.com/agenthelm/agenthelm/journal"
	"github.com/agenthelm/agenthelm/policy"
	"github.com/agenthelm/agenthelm/saga"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// approvalPolicy holds charges for approval (for a second when the
// customer is cus_expire, so that the approval expires), denies refunds,
// and allows everything else.
const approvalPolicy = `package agenthelm.authz

default decision := {"allow": true, "require_approval": false, "reasons": []}

decision := {
	"allow": false,
	"require_approval": true,
	"reasons": ["charges need a person's approval"],
	"approvers": ["finance"],
	"approval_timeout": charge_timeout,
} if input.tool.name == "charge_customer"

decision := {
	"allow": false,
	"require_approval": false,
	"reasons": ["refunds are made by the finance team, not by agents"],
} if input.tool.name == "refund_customer"

charge_timeout := "1s" if input.arguments.customer == "cus_expire"
else := "10m"
`

// approvalsSetup is a payments example server behind `agenthelm serve`
// with approvalPolicy.
type approvalsSetup struct {
	sp        *sidecarProc
	payments  *toolservers.Payments
	policyDir string
	cs        *mcp.ClientSession
}

func startApprovals(t *testing.T, mode string) *approvalsSetup {
	t.Helper()
	r, err := toolservers.Start(context.Background(), "payments", toolservers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "authz.rego"), []byte(approvalPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	sp := startServe(t, fmt.Sprintf(`
listen: {mcp: 127.0.0.1:0, admin: 127.0.0.1:0}
journal: {dir: $DIR/data}
policy: {dir: %q, mode: %s}
saga: {idle_commit: 1h}
upstreams:
  payments:
    url: %s
    trusted: true
    tools:
      charge_customer:
        compensate: {tool: refund_customer, args: '{charge_id: .result.structuredContent.charge_id}'}
`, dir, mode, r.URL()))
	s := &approvalsSetup{sp: sp, payments: r.Server.(*toolservers.Payments), policyDir: dir}
	s.cs = connect(t, "http://"+sp.mcp+"/mcp/payments")
	// A test that fails while a call is held must not wait for it to
	// expire: deny what is still pending (before the session closes).
	t.Cleanup(func() {
		var pending []approvals.Request
		if out, err := s.cliRun("approvals", "list", "--json"); err == nil && json.Unmarshal([]byte(out), &pending) == nil {
			for _, r := range pending {
				_, _ = s.cliRun("approvals", "deny", r.ID, "--reason", "the test ended")
			}
		}
	})
	return s
}

// call calls a tool in its own saga, in the background: held calls block.
func (s *approvalsSetup) call(tool, sagaID string, args map[string]any) <-chan *mcp.CallToolResult {
	ch := make(chan *mcp.CallToolResult, 1)
	go func() {
		res, err := s.cs.CallTool(context.Background(), &mcp.CallToolParams{
			Name: tool, Arguments: args, Meta: mcp.Meta{engine.MetaSaga: sagaID}})
		if err != nil {
			res = &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "protocol error: " + err.Error()}}}
		}
		ch <- res
	}()
	return ch
}

// callNow calls a tool and waits for its answer.
func (s *approvalsSetup) callNow(t *testing.T, tool, sagaID string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	return receive(t, s.call(tool, sagaID, args))
}

func receive(t *testing.T, ch <-chan *mcp.CallToolResult) *mcp.CallToolResult {
	t.Helper()
	select {
	case res := <-ch:
		return res
	case <-time.After(60 * time.Second):
		t.Fatal("the tool call did not return")
		return nil
	}
}

// cliRun runs agenthelm in this process against the sidecar's config and
// returns its output and error.
func (s *approvalsSetup) cliRun(args ...string) (string, error) {
	var out, errb bytes.Buffer
	err := run(context.Background(), append(args, "--config", s.sp.config), strings.NewReader(""), &out, &errb)
	return out.String() + errb.String(), err
}

// waitHeld waits until the call in sagaID is held, and returns its request.
func (s *approvalsSetup) waitHeld(t *testing.T, sagaID string) approvals.Request {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var pending []approvals.Request
		if err := json.Unmarshal([]byte(s.sp.cli(t, "approvals", "list", "--json")), &pending); err != nil {
			t.Fatalf("approvals list --json: %v", err)
		}
		for _, r := range pending {
			if r.Saga == sagaID {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no approval for saga %s; pending: %+v", sagaID, pending)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// journalOf stops the sidecar and reads the sagas' folded state and
// journal notes.
func (s *approvalsSetup) journalOf(t *testing.T, sagaIDs ...string) map[string]sagaRecord {
	t.Helper()
	s.cs.Close() // an open session would hold up the sidecar's shutdown
	s.sp.stop(t)
	ctx := context.Background()
	j, err := journal.Open(ctx, journal.Options{Dir: filepath.Join(filepath.Dir(s.sp.config), "data")})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close(ctx)
	e := engine.New(engine.Options{Journal: j})
	defer e.Close(ctx)
	out := map[string]sagaRecord{}
	for _, id := range sagaIDs {
		sg, err := e.Load(ctx, id)
		if err != nil {
			t.Fatalf("load saga %s: %v", id, err)
		}
		evs, err := j.Events(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		rec := sagaRecord{saga: sg, notes: map[string][]noteBody{}}
		for _, je := range evs {
			var ev saga.Event
			if err := json.Unmarshal(je.Body, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Kind != saga.EvNote {
				continue
			}
			var n noteBody
			if err := json.Unmarshal(ev.Note, &n); err != nil {
				t.Fatal(err)
			}
			rec.notes[n.Type] = append(rec.notes[n.Type], n)
		}
		out[id] = rec
	}
	return out
}

type sagaRecord struct {
	saga  *saga.Saga
	notes map[string][]noteBody // by type: decision, approval_requested, approval_decided
}

// noteBody is the union of the gate's journal notes.
type noteBody struct {
	Type     string              `json:"type"`
	ID       string              `json:"id"`
	Revision string              `json:"revision"`
	Verdict  string              `json:"verdict"`
	Reasons  []string            `json:"reasons"`
	DryRun   bool                `json:"dry_run"`
	Request  *approvals.Request  `json:"request"`
	Decision *approvals.Decision `json:"decision"`
}

func text(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// TestHelperAgenthelmProcess is agenthelm in a child process, for the tests
// that decide from "another process".
func TestHelperAgenthelmProcess(t *testing.T) {
	raw := os.Getenv("AGENTHELM_HELPER_ARGS")
	if raw == "" {
		t.Skip("not a test: runs agenthelm in a child process for TestApprovalsEndToEnd")
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	err := run(context.Background(), args, os.Stdin, os.Stdout, os.Stderr)
	if code, ok := exitCode(err); ok {
		os.Exit(code)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "agenthelm:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// agenthelmProcess runs agenthelm ARGS in another process (this test
// binary, re-executed) and returns its output and pid.
func agenthelmProcess(t *testing.T, args ...string) (string, int) {
	t.Helper()
	raw, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperAgenthelmProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "AGENTHELM_HELPER_ARGS="+string(raw))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("agenthelm %s in another process: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), cmd.ProcessState.Pid()
}

// TestApprovalsEndToEnd: against the real example payments server, a
// charge is held and approved from the CLI in another process, then
// forwarded; a refund is denied with the policy's reasons; a second charge
// expires; a broken policy edit is rejected while the old revision keeps
// deciding; and the journal records who approved which arguments.
func TestApprovalsEndToEnd(t *testing.T) {
	s := startApprovals(t, "enforce")

	// X: held, then approved by another process.
	xres := s.call("charge_customer", "saga-x", map[string]any{"customer": "cus_x", "amount": 12.5, "currency": "EUR"})
	req := s.waitHeld(t, "saga-x")
	var args bytes.Buffer
	_ = json.Compact(&args, req.Arguments)
	if req.Tool != "charge_customer" || req.Upstream != "payments" || !strings.Contains(args.String(), `"customer":"cus_x"`) ||
		len(req.Reasons) != 1 || req.Reasons[0] != "charges need a person's approval" || len(req.Approvers) != 1 || req.Approvers[0] != "finance" {
		t.Errorf("pending approval = %+v", req)
	}
	if got := s.sp.cli(t, "approvals", "list"); !strings.Contains(got, req.ID) || !strings.Contains(got, "payments/charge_customer") {
		t.Errorf("approvals list:\n%s", got)
	}
	if got := s.sp.cli(t, "approvals", "show", req.ID); !strings.Contains(got, `"customer": "cus_x"`) || !strings.Contains(got, req.ArgsDigest) {
		t.Errorf("approvals show:\n%s", got)
	}
	select {
	case res := <-xres:
		t.Fatalf("the held call returned before anyone decided: %s", text(res))
	default:
	}
	out, pid := agenthelmProcess(t, "approvals", "approve", req.ID, "--by", "alice", "--reason", "invoice checked", "--config", s.sp.config)
	if pid == os.Getpid() || !strings.Contains(out, "approved "+req.ID+": payments/charge_customer (saga saga-x, step 1) by alice") {
		t.Errorf("approve from another process (pid %d) printed:\n%s", pid, out)
	}
	res := receive(t, xres)
	if res.IsError {
		t.Fatalf("the approved call failed: %s", text(res))
	}
	charges := s.payments.Charges()
	if len(charges) != 1 || charges[0].Customer != "cus_x" || charges[0].Status != toolservers.ChargeCaptured {
		t.Fatalf("charges after the approval = %+v, want cus_x's", charges)
	}
	if out, err := s.cliRun("approvals", "approve", req.ID); err == nil || !strings.Contains(err.Error(), "already decided: approved by alice") {
		t.Errorf("a second approval = %v\n%s", err, out)
	}

	// Y: denied by the policy, with its reasons.
	res = s.callNow(t, "refund_customer", "saga-y", map[string]any{"charge_id": charges[0].ID})
	if !res.IsError || !strings.Contains(text(res), "refunds are made by the finance team, not by agents") {
		t.Errorf("the refund = isError %v: %s; want a denial with the policy's reason", res.IsError, text(res))
	}

	// Z: held, nobody decides, it expires.
	zres := s.call("charge_customer", "saga-z", map[string]any{"customer": "cus_expire", "amount": 3, "currency": "EUR"})
	res = receive(t, zres)
	if !res.IsError || !strings.Contains(text(res), "expired") {
		t.Errorf("the unattended charge = isError %v: %s; want a denial by expiry", res.IsError, text(res))
	}
	if got := s.payments.Charges(); len(got) != 1 || got[0].Status != toolservers.ChargeCaptured {
		t.Errorf("charges after the denial and the expiry = %+v, want only cus_x's, captured", got)
	}
	if got := s.sp.cli(t, "approvals", "list"); !strings.Contains(got, "no calls are waiting") {
		t.Errorf("approvals list at the end:\n%s", got)
	}

	// A broken edit while serving is rejected; the old revision decides.
	var before policy.Status
	if err := json.Unmarshal([]byte(s.sp.cli(t, "policy", "status", "--json")), &before); err != nil || before.Revision == "" || before.LastError != "" {
		t.Fatalf("policy status before the edit = %+v, %v", before, err)
	}
	broken := strings.Replace(approvalPolicy, `"reasons": ["refunds`, `"reasons": [refunds`, 1)
	if err := os.WriteFile(filepath.Join(s.policyDir, "authz.rego"), []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	var status string
	for deadline := time.Now().Add(30 * time.Second); ; {
		out, err := s.cliRun("policy", "status")
		if strings.Contains(out, "REJECTED") {
			if code, ok := exitCode(err); !ok || code != 1 {
				t.Errorf("policy status with a rejected reload exits with %v, want status 1", err)
			}
			status = out
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the broken policy was not reported:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(status, "rego_parse_error") || !strings.Contains(status, "authz.rego:") || !strings.Contains(status, "revision "+before.Revision+" keeps deciding") {
		t.Errorf("policy status after a broken edit:\n%s", status)
	}
	health := httpGet(t, "http://"+s.sp.admin+"/healthz")
	if !strings.Contains(health, `"status": "ok"`) || !strings.Contains(health, "rego_parse_error") {
		t.Errorf("healthz after a broken edit:\n%s", health)
	}
	res = s.callNow(t, "refund_customer", "saga-y2", map[string]any{"charge_id": charges[0].ID})
	if !res.IsError || !strings.Contains(text(res), "refunds are made by the finance team") {
		t.Errorf("a refund under the rejected edit = isError %v: %s; want the old revision's denial", res.IsError, text(res))
	}
	if res := s.callNow(t, "list_charges", "saga-l", map[string]any{}); res.IsError {
		t.Errorf("list_charges under the rejected edit failed: %s", text(res))
	}

	// The journal: who approved, for which arguments; the denial and the
	// expiry; the old revision deciding after the broken edit.
	recs := s.journalOf(t, "saga-x", "saga-y", "saga-z", "saga-y2")
	x := recs["saga-x"]
	reqs, decs := x.notes["approval_requested"], x.notes["approval_decided"]
	if len(reqs) != 1 || len(decs) != 1 || len(x.saga.Steps) != 1 {
		t.Fatalf("saga-x: %d steps, notes %+v", len(x.saga.Steps), x.notes)
	}
	d, digest := decs[0].Decision, x.saga.Steps[0].ArgsDigest
	if d == nil || !d.Approved || d.By != "alice" || d.Reason != "invoice checked" || d.ArgsDigest != digest || !strings.HasPrefix(digest, "sha256:") ||
		reqs[0].Request == nil || reqs[0].Request.ArgsDigest != digest || reqs[0].ID != req.ID {
		t.Errorf("saga-x approval in the journal: requested %+v, decided %+v; step digest %s", reqs[0].Request, d, digest)
	}
	if v := x.notes["decision"]; len(v) != 1 || v[0].Verdict != policy.VerdictRequireApproval || v[0].Revision != before.Revision {
		t.Errorf("saga-x decision notes = %+v", v)
	}
	if v := recs["saga-y"].notes["decision"]; len(v) != 1 || v[0].Verdict != policy.VerdictDeny || len(recs["saga-y"].notes["approval_requested"]) != 0 {
		t.Errorf("saga-y notes = %+v", recs["saga-y"].notes)
	}
	if z := recs["saga-z"].notes["approval_decided"]; len(z) != 1 || z[0].Decision == nil || !z[0].Decision.Expired || z[0].Decision.Approved {
		t.Errorf("saga-z approval in the journal = %+v, want an expiry", z)
	}
	if v := recs["saga-y2"].notes["decision"]; len(v) != 1 || v[0].Verdict != policy.VerdictDeny || v[0].Revision != before.Revision {
		t.Errorf("saga-y2 (after the broken edit) decision = %+v, want a deny by revision %s", v, before.Revision)
	}
}

// TestApprovalsDryRunForwardsAll: in dry-run mode the same three calls
// are all forwarded, nothing waits, and the journal has what would have
// happened.
func TestApprovalsDryRunForwardsAll(t *testing.T) {
	s := startApprovals(t, "dry-run")
	res := s.callNow(t, "charge_customer", "saga-x", map[string]any{"customer": "cus_x", "amount": 12.5, "currency": "EUR"})
	if res.IsError {
		t.Fatalf("charge in dry-run: %s", text(res))
	}
	charges := s.payments.Charges()
	if len(charges) != 1 {
		t.Fatalf("charges = %+v", charges)
	}
	if res := s.callNow(t, "refund_customer", "saga-y", map[string]any{"charge_id": charges[0].ID}); res.IsError {
		t.Errorf("refund in dry-run: %s", text(res))
	}
	if res := s.callNow(t, "charge_customer", "saga-z", map[string]any{"customer": "cus_expire", "amount": 3, "currency": "EUR"}); res.IsError {
		t.Errorf("second charge in dry-run: %s", text(res))
	}
	got := s.payments.Charges()
	if len(got) != 2 || got[0].Status != toolservers.ChargeRefunded || got[1].Customer != "cus_expire" {
		t.Errorf("charges after the dry run = %+v, want cus_x's refunded and cus_expire's", got)
	}
	recs := s.journalOf(t, "saga-x", "saga-y", "saga-z")
	for id, want := range map[string]string{"saga-x": policy.VerdictRequireApproval, "saga-y": policy.VerdictDeny, "saga-z": policy.VerdictRequireApproval} {
		r := recs[id]
		v := r.notes["decision"]
		if len(v) != 1 || v[0].Verdict != want || !v[0].DryRun || len(v[0].Reasons) == 0 {
			t.Errorf("%s decision notes = %+v, want a dry-run %s with reasons", id, v, want)
		}
		if n := len(r.notes["approval_requested"]); n != 0 {
			t.Errorf("%s has %d approval requests in dry-run", id, n)
		}
		if len(r.saga.Steps) != 1 || r.saga.Steps[0].Status != saga.Succeeded {
			t.Errorf("%s steps = %+v, want one that succeeded", id, r.saga.Steps)
		}
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestApprovalsWithoutSidecar: held calls exist only in a running
// sidecar, and the CLI says so.
func TestApprovalsWithoutSidecar(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agenthelm.yaml")
	if err := os.WriteFile(cfg, []byte("listen: {admin: 127.0.0.1:1}\njournal: {dir: "+filepath.Join(dir, "data")+"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"approvals", "list"}, {"approvals", "approve", "ap-1"}, {"approvals", "deny", "ap-1", "--reason", "no"}} {
		err := run(context.Background(), append(args, "--config", cfg), strings.NewReader(""), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "no sidecar is running") || !strings.Contains(err.Error(), "127.0.0.1:1") {
			t.Errorf("agenthelm %s with no sidecar = %v", strings.Join(args, " "), err)
		}
	}
}

// TestApprovalsAndPolicyHelp: every command documents itself with examples.
func TestApprovalsAndPolicyHelp(t *testing.T) {
	for _, args := range [][]string{
		{"approvals"}, {"approvals", "list"}, {"approvals", "show"}, {"approvals", "approve"}, {"approvals", "deny"},
		{"policy"}, {"policy", "test"}, {"policy", "eval"}, {"policy", "status"},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), append(args, "--help"), strings.NewReader(""), &out, io.Discard); err != nil {
			t.Fatalf("%s --help: %v", strings.Join(args, " "), err)
		}
		if !strings.Contains(out.String(), "Examples:\n  agenthelm "+strings.Join(args, " ")) {
			t.Errorf("agenthelm %s --help has no example of itself:\n%s", strings.Join(args, " "), out.String())
		}
	}
}
