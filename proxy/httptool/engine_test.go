package httptool

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/approvals"
	"github.com/agenthelm/agenthelm/compensators"
	"github.com/agenthelm/agenthelm/config"
	"github.com/agenthelm/agenthelm/engine"
	"github.com/agenthelm/agenthelm/internal/paymentsapi"
	"github.com/agenthelm/agenthelm/journal"
	"github.com/agenthelm/agenthelm/policy"
	"github.com/agenthelm/agenthelm/saga"
	"github.com/agenthelm/agenthelm/telemetry"
	"github.com/agenthelm/agenthelm/toolcall"
)

// These tests put the real saga engine (with a Badger journal, the
// compensator rules built from configuration, and OPA where a test is
// about policy) behind the proxy, as agenthelm serve does.

// routesConfig declares the payments API's routes; $API and $DOWN are
// replaced by base URLs.
const routesConfig = `
upstreams:
  payments: {http: "$API"}
  down: {http: "$DOWN"}
routes:
  - upstream: payments
    method: POST
    path: /v1/charges
    tool: charge
    compensate:
      method: POST
      path: '"/v1/refunds"'
      body: '{charge: .response.body.id}'
      headers: {X-Reason: '"rollback of " + .request.path'}
  - {upstream: payments, method: DELETE, path: '/v1/charges/{id}', tool: cancel_charge}
  - {upstream: payments, method: GET, path: '/v1/charges/{id}', tool: get_charge, read_only: true, on_error: continue}
  - {upstream: payments, method: POST, path: /v1/fail, tool: fail}
  - {upstream: payments, method: POST, path: /v1/slow, tool: slow}
  - {upstream: down, method: POST, path: /v1/anything, tool: anything}
`

// ruleSet gives the engine the compensator rules (what cmd/agenthelm's
// rules type does).
type ruleSet struct{ set *compensators.Set }

func (r ruleSet) Rule(upstream, tool string) engine.Rule {
	c := r.set.Rule(upstream, tool)
	return engine.Rule{ReadOnly: c.ReadOnly, Irreversible: c.Irreversible, Idempotent: c.Idempotent,
		ErrorsMayLeaveEffects: c.ErrorsMayLeaveEffects, ContinueOnError: c.ContinueOnError, Compensate: c.Compensate}
}

// lazyInvoker lets the engine reach the proxy that is built after it.
type lazyInvoker struct{ p **Proxy }

func (l lazyInvoker) Invoke(ctx context.Context, up, session, method string, params json.RawMessage) (toolcall.Result, error) {
	return (*l.p).Invoke(ctx, up, session, method, params)
}

type engineSetup struct {
	api    *paymentsapi.API
	base   string // the proxy's base URL
	engine *engine.Engine
	j      *journal.Journal
}

// startEngine runs the engine behind a proxy for routesConfig. policyRego,
// if not empty, is the policy; otherwise every call is allowed.
func startEngine(t *testing.T, policyRego string, callTimeout time.Duration) *engineSetup {
	t.Helper()
	return startEngineWith(t, setupOptions{policy: policyRego, callTimeout: callTimeout})
}

// startEngineRedacting is startEngine with redaction of the journal.
func startEngineRedacting(t *testing.T, policyRego string, callTimeout time.Duration, red config.Redaction) *engineSetup {
	t.Helper()
	return startEngineWith(t, setupOptions{policy: policyRego, callTimeout: callTimeout, redaction: red})
}

// setupOptions are startEngineWith's.
type setupOptions struct {
	policy      string // Rego; empty allows every call
	callTimeout time.Duration
	redaction   config.Redaction
	approvals   *approvals.Broker // holds the calls the policy sends for approval
}

// startEngineWith runs the engine behind a proxy for routesConfig.
func startEngineWith(t *testing.T, so setupOptions) *engineSetup {
	t.Helper()
	policyRego, callTimeout, red := so.policy, so.callTimeout, so.redaction
	api := paymentsapi.Start(t)
	down := closedURL(t) // nothing listens there
	yaml := strings.NewReplacer("$API", api.URL, "$DOWN", down).Replace(routesConfig)
	cfg, err := config.Parse([]byte(yaml), "agenthelm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set, err := compensators.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	j, err := journal.Open(ctx, journal.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var p *Proxy
	opts := engine.Options{
		Journal: j, Invoker: lazyInvoker{&p}, Rules: ruleSet{set}, Eval: compensators.Eval,
		AgentHeader: "X-Agent-Id", IdleCommit: time.Hour, CallTimeout: callTimeout,
		Describe:  func(string) *saga.Launch { return &saga.Launch{Transport: "http", URL: api.URL} },
		Retry:     saga.Policy{MaxAttempts: 3, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond},
		Approvals: so.approvals,
	}
	if policyRego != "" {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "authz.rego"), []byte(policyRego), 0o644); err != nil {
			t.Fatal(err)
		}
		gate, err := policy.New(ctx, policy.Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		opts.Gate = gate
	}
	if len(red.Keys) > 0 || len(red.Paths) > 0 {
		r, err := telemetry.NewRedactor(red)
		if err != nil {
			t.Fatal(err)
		}
		opts.Redact = r.Member
	}
	e := engine.New(opts)
	var routes []Route
	for _, r := range cfg.Routes {
		routes = append(routes, Route{Upstream: r.Upstream, Method: r.Method, Path: r.Path, Tool: r.Tool})
	}
	p, base := startProxy(t, Options{
		Upstreams:   map[string]Upstream{"payments": {URL: api.URL}, "down": {URL: down}},
		Routes:      routes,
		Interceptor: e,
		AgentHeader: "X-Agent-Id",
		CallTimeout: callTimeout,
	})
	// Cleanups run last first: the proxy closes before the engine and
	// the journal.
	t.Cleanup(func() {
		_ = e.Close(ctx)
		_ = j.Close(ctx)
	})
	return &engineSetup{api: api, base: base, engine: e, j: j}
}

// TestEngineUnwindsCharge: a charge, then a call that fails; the charge is
// refunded exactly once under the key derived from the saga, and the
// failing answer is the upstream's with a rollback summary header.
func TestEngineUnwindsCharge(t *testing.T) {
	s := startEngine(t, "", 5*time.Second)
	r := send(t, "POST", s.base+"/payments/v1/charges", `{"amount":700,"currency":"eur"}`, "X-Agent-Id", "bot")
	id := r.header.Get("X-Agenthelm-Saga")
	if r.status != http.StatusCreated || id == "" || r.header.Get("X-Ledger") != "paymentsapi" {
		t.Fatalf("charge: %d %v %s", r.status, r.header, r.body)
	}
	r = send(t, "POST", s.base+"/payments/v1/fail", ``, "X-Agent-Id", "bot")
	if r.status != http.StatusInternalServerError || !strings.Contains(r.body, "failed on purpose") {
		t.Fatalf("failing call: %d %s, want the API's 500", r.status, r.body)
	}
	if got := r.header.Get("X-Agenthelm-Saga"); got != id {
		t.Errorf("failing call's saga = %q, want %q", got, id)
	}
	rb := r.header.Get("X-Agenthelm-Rollback")
	if !strings.Contains(rb, "agenthelm rolled back saga "+id) || !strings.Contains(rb, "step 1 charge (undone by POST /v1/refunds)") {
		t.Errorf("X-AgentHelm-Rollback = %q", rb)
	}
	refunds := s.api.Refunds()
	if len(refunds) != 1 || refunds[0].Charge != "ch_1" || refunds[0].Key != saga.IdempotencyKey(id, 1, "compensate") {
		t.Errorf("refunds %+v, want one of ch_1 with key %s", refunds, saga.IdempotencyKey(id, 1, "compensate"))
	}
	for _, q := range s.api.Requests() {
		switch q.URI {
		case "/v1/charges":
			if q.Header.Get("Idempotency-Key") != saga.IdempotencyKey(id, 1, "forward") {
				t.Errorf("charge sent with Idempotency-Key %q", q.Header.Get("Idempotency-Key"))
			}
		case "/v1/refunds":
			if q.Header.Get("X-Reason") != "rollback of /v1/charges" || q.Body != `{"charge":"ch_1"}` || q.Header.Get("Content-Type") != "application/json" {
				t.Errorf("refund sent as %v %s", q.Header, q.Body)
			}
		}
	}

	// The saga takes no new steps: 409, not forwarded.
	n := len(s.api.Requests())
	r = send(t, "POST", s.base+"/payments/v1/charges", `{"amount":1}`, "X-AgentHelm-Saga", id)
	pr := problemOf(t, r)
	if r.status != http.StatusConflict || pr.Code != codeSagaClosed || pr.Saga != id || !strings.Contains(pr.Detail, "takes no new steps") {
		t.Errorf("call in an unwound saga: %d %s", r.status, r.body)
	}
	if len(s.api.Requests()) != n {
		t.Errorf("a call of a finished saga reached the API")
	}
	sg, err := s.engine.Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if sg.Status != saga.Compensated || len(sg.Steps) != 2 || sg.Steps[0].Upstream != "payments" || sg.Steps[0].Tool != "charge" {
		t.Errorf("saga %s: %s with %d steps", id, sg.Status, len(sg.Steps))
	}
}

// TestEnginePolicyDenies: a Rego rule over transport.method and
// transport.path denies; the agent gets 403 with the reasons and the API
// is never called.
func TestEnginePolicyDenies(t *testing.T) {
	s := startEngine(t, `package agenthelm.authz

default decision := {"allow": true, "require_approval": false, "reasons": []}

decision := {"allow": false, "require_approval": false, "reasons": [sprintf("%s %s: cancelling charges is off", [input.transport.method, input.transport.path]), "ask finance"]} if {
	input.transport.method == "DELETE"
	startswith(input.transport.path, "/v1/charges/")
	input.transport.params.id == "ch_9"
}
`, 5*time.Second)
	r := send(t, "DELETE", s.base+"/payments/v1/charges/ch_9", "", "X-Agent-Id", "bot")
	pr := problemOf(t, r)
	want := []string{"DELETE /v1/charges/ch_9: cancelling charges is off", "ask finance"}
	if r.status != http.StatusForbidden || pr.Code != codeDenied || pr.Tool != "cancel_charge" || strings.Join(pr.Reasons, "|") != strings.Join(want, "|") {
		t.Errorf("denied call: %d %s, want 403 denied with reasons %q", r.status, r.body, want)
	}
	if n := len(s.api.Requests()); n != 0 {
		t.Errorf("the API got %d requests, want none", n)
	}
}

// TestEngineUpstreamFailures: an upstream that is down (502) or does not
// answer in time (504) unwinds the saga; the problem carries the rollback.
func TestEngineUpstreamFailures(t *testing.T) {
	s := startEngine(t, "", 300*time.Millisecond)
	for i, tc := range []struct {
		path   string
		status int
		code   string
	}{
		{"/down/v1/anything", http.StatusBadGateway, codeUpstreamDown},
		{"/payments/v1/slow", http.StatusGatewayTimeout, codeUpstreamTimeout},
	} {
		agent := []string{"X-Agent-Id", tc.code}
		if r := send(t, "POST", s.base+"/payments/v1/charges", `{"amount":5}`, agent...); r.status != http.StatusCreated {
			t.Fatalf("charge: %d %s", r.status, r.body)
		}
		r := send(t, "POST", s.base+tc.path, `{}`, agent...)
		pr := problemOf(t, r)
		var rb engine.Rollback
		_ = json.Unmarshal(pr.Rollback, &rb)
		if r.status != tc.status || pr.Code != tc.code || rb.Status != saga.Compensated || pr.Saga != rb.Saga || r.header.Get("X-Agenthelm-Rollback") == "" {
			t.Errorf("%s: %d %s, want %d %s with a compensated rollback", tc.path, r.status, r.body, tc.status, tc.code)
		}
		if refunds := s.api.Refunds(); len(refunds) != i+1 || refunds[i].Charge != "ch_"+string(rune('1'+i)) {
			t.Errorf("after %s: refunds %+v", tc.path, refunds)
		}
	}
}

// TestEngineRedactsHTTPPaths: redaction paths into .request and .response
// mask a REST call's body in the journal (and the response's text copy),
// while the compensation still gets the real values.
func TestEngineRedactsHTTPPaths(t *testing.T) {
	s := startEngineRedacting(t, "", 5*time.Second, config.Redaction{Paths: []config.Expr{
		{Source: ".request.body.card"}, {Source: ".response.body.id"}}})
	r := send(t, "POST", s.base+"/payments/v1/charges", `{"amount":700,"currency":"eur","card":"4000056655665556"}`, "X-Agent-Id", "bot")
	if r.status != http.StatusCreated {
		t.Fatalf("charge: %d %s", r.status, r.body)
	}
	id := r.header.Get("X-Agenthelm-Saga")
	send(t, "POST", s.base+"/payments/v1/fail", ``, "X-Agent-Id", "bot")
	if refunds := s.api.Refunds(); len(refunds) != 1 || refunds[0].Charge != "ch_1" {
		t.Errorf("refunds %+v, want ch_1 refunded from the unmasked response", refunds)
	}
	evs, err := s.j.Events(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, ev := range evs {
		all.Write(ev.Body)
	}
	if strings.Contains(all.String(), "4000056655665556") || strings.Contains(all.String(), `"id":"ch_1"`) || strings.Contains(all.String(), `"id":"re_1"`) {
		t.Errorf("the journal holds the card or a response id in clear:\n%s", all.String())
	}
	if !strings.Contains(all.String(), `"card":"[REDACTED]"`) || !strings.Contains(all.String(), `"id":"[REDACTED]"`) {
		t.Errorf("the card or the charge id is not redacted in the journal:\n%s", all.String())
	}
}

// TestEngineOnErrorContinue: a route with on_error: continue relays its
// error status (a lookup's 404 is an answer) and the saga goes on.
func TestEngineOnErrorContinue(t *testing.T) {
	s := startEngine(t, "", 5*time.Second)
	if r := send(t, "POST", s.base+"/payments/v1/charges", `{"amount":5,"currency":"eur"}`, "X-Agent-Id", "bot"); r.status != http.StatusCreated {
		t.Fatalf("charge: %d %s", r.status, r.body)
	}
	r := send(t, "GET", s.base+"/payments/v1/charges/ch_9", ``, "X-Agent-Id", "bot")
	if r.status != http.StatusNotFound || r.header.Get("X-Agenthelm-Rollback") != "" {
		t.Fatalf("lookup of a missing charge: %d %v %s, want the API's 404 and no rollback", r.status, r.header, r.body)
	}
	if r := send(t, "GET", s.base+"/payments/v1/charges/ch_1", ``, "X-Agent-Id", "bot"); r.status != http.StatusOK {
		t.Errorf("the saga did not go on after the 404: %d %s", r.status, r.body)
	}
	if refunds := s.api.Refunds(); len(refunds) != 0 {
		t.Errorf("refunds %+v: the 404 unwound the saga", refunds)
	}
}

// TestEngineHeldCallAgentHangsUp: an agent that closes its connection while
// its call waits for approval withdraws the call, as a closed stream does
// on the MCP side: the approval is no longer pending (it used to wait for
// its timeout, 15 minutes by default), it can no longer be granted, and
// nothing reaches the API.
func TestEngineHeldCallAgentHangsUp(t *testing.T) {
	broker := approvals.New(approvals.Options{})
	s := startEngineWith(t, setupOptions{callTimeout: 5 * time.Second, approvals: broker, policy: `package agenthelm.authz

default decision := {"allow": true, "require_approval": false, "reasons": []}

decision := {"allow": true, "require_approval": true, "reasons": ["charges need a person"]} if input.transport.path == "/v1/charges"
`})
	host := strings.TrimPrefix(s.base, "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"amount":500,"currency":"eur"}`
	if _, err := fmt.Fprintf(conn, "POST /payments/v1/charges HTTP/1.1\r\nHost: %s\r\nX-Agent-Id: bot\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", host, len(body), body); err != nil {
		t.Fatal(err)
	}
	pending := waitPending(t, broker, 1, "the charge to be held")
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	waitPending(t, broker, 0, "the held charge to be withdrawn after its agent hung up")
	if _, err := broker.Decide(pending[0].ID, true, "alice", "too late"); err == nil {
		t.Error("approving the withdrawn call succeeded, want an error")
	}
	if n := len(s.api.Requests()); n != 0 {
		t.Errorf("the API got %d requests, want none", n)
	}
	// The journal says so: the step was never forwarded, by the agent's
	// doing.
	evs, err := s.j.Events(context.Background(), pending[0].Saga)
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, ev := range evs {
		all.Write(ev.Body)
	}
	if !strings.Contains(all.String(), `"status":"denied"`) || !strings.Contains(all.String(), "the agent withdrew the call") {
		t.Errorf("the journal does not record the withdrawn call as a denied step:\n%s", all.String())
	}

	// An agent that stays gets its held call forwarded once approved: the
	// watch does not mistake a quiet connection for a closed one.
	done := make(chan reply, 1)
	go func() {
		done <- send(t, "POST", s.base+"/payments/v1/charges", body, "Content-Type", "application/json", "X-Agent-Id", "bot")
	}()
	pending = waitPending(t, broker, 1, "the second charge to be held")
	time.Sleep(2 * hangupPoll) // let the watch look at least once
	if _, err := broker.Decide(pending[0].ID, true, "alice", "fine"); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.status != http.StatusCreated || len(s.api.Charges()) != 1 {
		t.Errorf("approved charge: %d %s with %d charges made, want 201 and one charge", r.status, r.body, len(s.api.Charges()))
	}
}

// waitPending waits up to 10 s for the broker to hold n requests and
// returns them.
func waitPending(t *testing.T, b *approvals.Broker, n int, what string) []approvals.Request {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := b.Pending()
		if len(p) == n {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 10 s for %s: %d approvals pending, want %d", what, len(p), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
