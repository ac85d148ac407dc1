package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/internal/paymentsapi"
	"github.com/agenthelm/agenthelm/policies"
	"github.com/agenthelm/agenthelm/saga"
)

// restConfig runs serve in front of the test payments API. The policy is
// dry-run unless policyDir is set: the shipped policy holds irreversible
// calls (fail has no compensator) for approval.
func restConfig(api *paymentsapi.API, policyDir string) string {
	pol := "policy: {mode: dry-run}"
	if policyDir != "" {
		pol = "policy: {dir: " + policyDir + ", mode: enforce}"
	}
	return fmt.Sprintf(`
listen: {mcp: 127.0.0.1:0, http: 127.0.0.1:0, admin: 127.0.0.1:0}
journal: {dir: $DIR/data}
%s
saga: {idle_commit: 1h}
upstreams:
  payments:
    http: %s
    headers: {X-Api-Key: "${AGENTHELM_TEST_PAYMENTS_KEY}"}
routes:
  - upstream: payments
    method: POST
    path: /v1/charges
    tool: charge
    compensate: {method: POST, path: '"/v1/refunds"', body: '{charge: .response.body.id}'}
  - {upstream: payments, method: POST, path: /v1/fail, tool: fail}
  - {upstream: payments, method: DELETE, path: '/v1/charges/{id}', tool: cancel_charge}
`, pol, api.URL)
}

type httpReply struct {
	status int
	header http.Header
	body   string
}

func httpDo(t *testing.T, method, url, body string, headers ...string) httpReply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return httpReply{resp.StatusCode, resp.Header, string(b)}
}

type problemJSON struct {
	Status   int             `json:"status"`
	Code     string          `json:"code"`
	Detail   string          `json:"detail"`
	Reasons  []string        `json:"reasons"`
	Saga     string          `json:"saga"`
	Tool     string          `json:"tool"`
	Rollback json.RawMessage `json:"rollback"`
}

func problemFrom(t *testing.T, r httpReply) problemJSON {
	t.Helper()
	var pr problemJSON
	if r.header.Get("Content-Type") != "application/problem+json" || json.Unmarshal([]byte(r.body), &pr) != nil {
		t.Fatalf("want a problem+json, got %d %v %s", r.status, r.header, r.body)
	}
	return pr
}

// TestServeHTTPToolUnwinds drives REST calls through `agenthelm serve`: a
// charge, then a call that fails; the charge is refunded once under the
// saga's compensation key, the failing answer says so, unrouted requests
// are forwarded (reads) or refused (writes), and `sagas show` lists the
// HTTP steps.
func TestServeHTTPToolUnwinds(t *testing.T) {
	t.Setenv("AGENTHELM_TEST_PAYMENTS_KEY", "sk_test_from_env")
	api := paymentsapi.Start(t)
	sp := startServe(t, restConfig(api, ""))
	if sp.http == "" {
		t.Fatal("serve did not start the HTTP tool proxy")
	}
	base := "http://" + sp.http + "/payments"

	r := httpDo(t, "POST", base+"/v1/charges", `{"amount":700,"currency":"eur"}`, "Authorization", "Bearer agent-token", "X-Agent-Id", "e2e")
	id := r.header.Get("X-Agenthelm-Saga")
	if r.status != http.StatusCreated || id == "" {
		t.Fatalf("charge: %d %v %s", r.status, r.header, r.body)
	}
	// Unrouted: a read is forwarded as sent, a write is refused.
	if r := httpDo(t, "GET", base+"/v1/charges/../charges", ""); r.status != http.StatusNotFound {
		t.Errorf("unrouted GET: %d %s, want the API's own 404 for the path as sent", r.status, r.body)
	}
	if pr := problemFrom(t, httpDo(t, "POST", base+"/v1/refunds", `{"charge":"ch_1"}`)); pr.Status != http.StatusForbidden || pr.Code != "not_a_tool_call" {
		t.Errorf("unrouted POST: %+v", pr)
	}

	r = httpDo(t, "POST", base+"/v1/fail", `{}`, "X-Agent-Id", "e2e")
	if r.status != http.StatusInternalServerError || !strings.Contains(r.body, "failed on purpose") {
		t.Fatalf("failing call: %d %s", r.status, r.body)
	}
	if rb := r.header.Get("X-Agenthelm-Rollback"); !strings.Contains(rb, "Undone, in reverse order: step 1 charge (undone by POST /v1/refunds)") {
		t.Errorf("X-AgentHelm-Rollback = %q", rb)
	}
	refunds := api.Refunds()
	if len(refunds) != 1 || refunds[0].Charge != "ch_1" || refunds[0].Key != saga.IdempotencyKey(id, 1, "compensate") {
		t.Errorf("refunds = %+v, want one of ch_1 under %s", refunds, saga.IdempotencyKey(id, 1, "compensate"))
	}
	var uris []string
	for _, q := range api.Requests() {
		uris = append(uris, q.Method+" "+q.URI)
		if q.Header.Get("Authorization") != "" || q.Header.Get("X-Api-Key") != "sk_test_from_env" {
			t.Errorf("%s %s reached the API with Authorization %q, X-Api-Key %q", q.Method, q.URI, q.Header.Get("Authorization"), q.Header.Get("X-Api-Key"))
		}
	}
	want := "POST /v1/charges|GET /v1/charges/../charges|POST /v1/fail|POST /v1/refunds"
	if got := strings.Join(uris, "|"); got != want {
		t.Errorf("the API got %s, want %s", got, want)
	}

	show := sp.cli(t, "sagas", "show", id)
	for _, s := range []string{"payments/charge", "POST /v1/refunds", "payments/fail", "compensated"} {
		if !strings.Contains(show, s) {
			t.Errorf("sagas show lacks %q:\n%s", s, show)
		}
	}
	// The journal records how to reach the REST API (rule 29): its base URL.
	var sg saga.Saga
	if err := json.Unmarshal([]byte(sp.cli(t, "sagas", "show", id, "--json")), &sg); err != nil || len(sg.Steps) != 2 {
		t.Fatalf("sagas show --json: %v, %d steps", err, len(sg.Steps))
	}
	if l := sg.Steps[0].Launch; l == nil || l.Transport != "http" || l.URL != api.URL {
		t.Errorf("step 1 launch = %+v, want transport http, URL %s", l, api.URL)
	}
	var rf runFile
	b, _ := os.ReadFile(filepath.Join(filepath.Dir(sp.config), "data", runFileName))
	if json.Unmarshal(b, &rf) != nil || rf.HTTP != sp.http {
		t.Errorf("run file %s, want http %s", b, sp.http)
	}
}

// TestServeHTTPToolPolicy: a Rego rule over the transport's method and
// path denies; the agent gets 403 with the reasons, which quote the path
// as sent, and the API never sees the call.
func TestServeHTTPToolPolicy(t *testing.T) {
	t.Setenv("AGENTHELM_TEST_PAYMENTS_KEY", "k")
	dir := t.TempDir()
	rego := `package agenthelm.authz

default decision := {"allow": true, "require_approval": false, "reasons": []}

decision := {"allow": false, "require_approval": false, "reasons": [sprintf("%s %s: charges are not cancelled by agents", [input.transport.method, input.transport.path])]} if {
	input.transport.kind == "http"
	input.transport.method == "DELETE"
	startswith(input.transport.path, "/v1/charges/")
}
`
	if err := os.WriteFile(filepath.Join(dir, "authz.rego"), []byte(rego), 0o644); err != nil {
		t.Fatal(err)
	}
	api := paymentsapi.Start(t)
	sp := startServe(t, restConfig(api, dir))
	r := httpDo(t, "DELETE", "http://"+sp.http+"/payments/v1/charges/ch_1%2F..%2Fadmin", "")
	pr := problemFrom(t, r)
	want := "DELETE /v1/charges/ch_1%2F..%2Fadmin: charges are not cancelled by agents"
	if r.status != http.StatusForbidden || pr.Code != "denied" || pr.Tool != "cancel_charge" || len(pr.Reasons) != 1 || pr.Reasons[0] != want {
		t.Errorf("denied call: %d %s, want 403 with reason %q", r.status, r.body, want)
	}
	if n := len(api.Requests()); n != 0 {
		t.Errorf("the API got %d requests, want none", n)
	}
}

// TestRollbackHTTPSagaOffline: after the sidecar stopped, and with the
// REST upstream gone from the configuration, `sagas rollback` reaches the
// API at the base URL the journal recorded and refunds the charge.
func TestRollbackHTTPSagaOffline(t *testing.T) {
	t.Setenv("AGENTHELM_TEST_PAYMENTS_KEY", "k")
	api := paymentsapi.Start(t)
	sp := startServe(t, restConfig(api, ""))
	r := httpDo(t, "POST", "http://"+sp.http+"/payments/v1/charges", `{"amount":300,"currency":"eur"}`)
	id := r.header.Get("X-Agenthelm-Saga")
	if r.status != http.StatusCreated || id == "" {
		t.Fatalf("charge: %d %s", r.status, r.body)
	}
	sp.stop(t)
	dir := filepath.Dir(sp.config)
	cfg := fmt.Sprintf("listen: {mcp: 127.0.0.1:0, admin: 127.0.0.1:0}\njournal: {dir: %s}\npolicy: {mode: dry-run}\n", filepath.Join(dir, "data"))
	if err := os.WriteFile(sp.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	out := sp.cli(t, "sagas", "rollback", id, "--reason", "bad run")
	if !strings.Contains(out, "compensated") {
		t.Fatalf("rollback output:\n%s", out)
	}
	if refunds := api.Refunds(); len(refunds) != 1 || refunds[0].Charge != "ch_1" || refunds[0].Key != saga.IdempotencyKey(id, 1, "compensate") {
		t.Errorf("refunds = %+v, want one of ch_1", refunds)
	}
}

// TestServeHTTPToolShippedBudget: the shipped budget policy reads a REST
// charge's amount from its body, as it reads an MCP tool's arguments: a
// charge above the hard limit is denied and never reaches the API, and
// earlier charges of the saga count towards it.
func TestServeHTTPToolShippedBudget(t *testing.T) {
	_, api, base := startShippedREST(t, 900)
	charge := base + "/v1/charges"
	r := httpDo(t, "POST", charge, `{"amount":4500,"currency":"eur"}`, "X-Agent-Id", "bot")
	pr := problemFrom(t, r)
	if r.status != http.StatusForbidden || pr.Code != "denied" || len(pr.Reasons) == 0 || !strings.Contains(pr.Reasons[0], "would spend 5400 in total, above the hard limit of 5000") {
		t.Errorf("a charge over the saga's budget: %d %s, want 403 with the hard limit", r.status, r.body)
	}
	if n := len(api.Charges()); n != 1 {
		t.Errorf("the API has %d charges, want 1", n)
	}
}

// TestServeHTTPToolApproval: with the shipped policies, a REST call that
// cannot be undone (a route with no compensator) is held until a person
// approves it from the CLI; then it is forwarded, and its failure unwinds
// the saga's earlier charge.
func TestServeHTTPToolApproval(t *testing.T) {
	sp, api, base := startShippedREST(t, 90)
	held := make(chan httpReply, 1)
	go func() { held <- httpDo(t, "POST", base+"/v1/fail", `{}`, "X-Agent-Id", "bot") }()
	var id string
	for deadline := time.Now().Add(10 * time.Second); id == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var pending []struct {
			ID   string `json:"id"`
			Tool string `json:"tool"`
		}
		if err := json.Unmarshal([]byte(sp.cli(t, "approvals", "list", "--json")), &pending); err != nil {
			t.Fatal(err)
		}
		if len(pending) == 1 && pending[0].Tool == "fail" {
			id = pending[0].ID
		}
	}
	if id == "" {
		t.Fatal("the irreversible REST call was not held for approval")
	}
	if n := len(api.Requests()); n != 1 {
		t.Errorf("the API got %d requests while the call was held, want the charge only", n)
	}
	sp.cli(t, "approvals", "approve", id, "--reason", "checked")
	r := <-held
	if r.status != http.StatusInternalServerError || !strings.Contains(r.header.Get("X-Agenthelm-Rollback"), "undone by POST /v1/refunds") {
		t.Errorf("approved call: %d %v %s, want the API's 500 and the rollback", r.status, r.header, r.body)
	}
	if refunds := api.Refunds(); len(refunds) != 1 {
		t.Errorf("refunds %+v, want the charge refunded once", refunds)
	}
}

// startShippedREST runs serve with the shipped policies in front of the
// test payments API, makes a charge of amount (agent "bot"), and returns
// the sidecar, the API and the proxy's base URL for the payments upstream.
func startShippedREST(t *testing.T, amount int) (*sidecarProc, *paymentsapi.API, string) {
	t.Helper()
	t.Setenv("AGENTHELM_TEST_PAYMENTS_KEY", "k")
	dir, err := policies.WriteTo(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	api := paymentsapi.Start(t)
	sp := startServe(t, restConfig(api, dir))
	base := "http://" + sp.http + "/payments"
	if r := httpDo(t, "POST", base+"/v1/charges", fmt.Sprintf(`{"amount":%d,"currency":"eur"}`, amount), "X-Agent-Id", "bot"); r.status != http.StatusCreated {
		t.Fatalf("charge: %d %s", r.status, r.body)
	}
	return sp, api, base
}
