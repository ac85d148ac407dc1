package compensators

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const routesYAML = `
upstreams:
  payments: {http: "http://127.0.0.1:9000/api"}
routes:
  - upstream: payments
    method: POST
    path: /v1/charges
    tool: charge
    idempotent: true
    compensate:
      method: POST
      path: '"/v1/refunds"'
      body: '{charge: .response.body.id, amount: .request.body.amount} # the whole charge'
      headers: {X-Reason: '"rollback of " + .request.path', X-Tenant: '.request.headers["X-Tenant"] // "none"'}
  - upstream: payments
    method: PUT
    path: /v1/items/{id}
    tool: put_item
    compensate:
      method: DELETE
      path: 'def p: "/v1/items/" + .request.params.id; p'
  - {upstream: payments, method: GET, path: /v1/charges, tool: list_charges, read_only: true}
  - {upstream: payments, method: POST, path: /v1/payouts, tool: payout}
  - {upstream: payments, method: POST, path: /v1/transfers, tool: transfer, irreversible: true}
`

func TestRouteRules(t *testing.T) {
	s := newSet(t, routesYAML)
	tests := []struct {
		tool                         string
		readOnly, irreversible, idem bool
		compensator                  string
		needsResult                  bool
	}{
		{tool: "charge", idem: true, compensator: "POST /v1/refunds", needsResult: true},
		{tool: "put_item", compensator: `DELETE def p: "/v1/items/" + .request.params.id; p`},
		{tool: "list_charges", readOnly: true},
		{tool: "payout"},
		{tool: "transfer", irreversible: true},
	}
	for _, tt := range tests {
		r := s.Rule("payments", tt.tool)
		if r.Source != "config" || r.ReadOnly != tt.readOnly || r.Irreversible != tt.irreversible || r.Idempotent != tt.idem {
			t.Errorf("Rule(payments, %s) = %+v, want read_only %v irreversible %v idempotent %v from config", tt.tool, r, tt.readOnly, tt.irreversible, tt.idem)
		}
		switch {
		case tt.compensator == "" && r.Compensate != nil:
			t.Errorf("Rule(payments, %s).Compensate = %+v, want none", tt.tool, r.Compensate)
		case tt.compensator != "" && r.Compensate == nil:
			t.Errorf("Rule(payments, %s).Compensate = nil, want %q", tt.tool, tt.compensator)
		case tt.compensator != "":
			if r.Compensate.Tool != tt.compensator || r.Compensate.NeedsResult != tt.needsResult || r.Compensate.Upstream != "" {
				t.Errorf("Rule(payments, %s).Compensate = %+v, want tool %q, needs_result %v, the step's upstream", tt.tool, r.Compensate, tt.compensator, tt.needsResult)
			}
		}
	}
	if r := s.Rule("payments", "unrouted"); r.Source != "default" {
		t.Errorf("Rule(payments, unrouted) = %+v, want the default", r)
	}
}

// TestRouteProgram runs a route's compensation program over what the
// engine passes to Eval: the journaled request as args and the forward
// call's result, whose structuredContent is the response.
func TestRouteProgram(t *testing.T) {
	s := newSet(t, routesYAML)
	args := json.RawMessage(`{"method":"POST","path":"/v1/charges","params":{},"query":{},"headers":{"Content-Type":"application/json"},"body":{"amount":12345678901234567890}}`)
	result := json.RawMessage(`{"content":[{"type":"text","text":"{\"id\":\"ch_1\"}"}],"structuredContent":{"status":201,"headers":{},"body":{"id":"ch_1"}},"isError":false}`)
	out, err := Eval(s.Rule("payments", "charge").Compensate.Args, args, result, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"method":  "POST",
		"path":    "/v1/refunds",
		"body":    map[string]any{"charge": "ch_1", "amount": json.Number("12345678901234567890")},
		"headers": map[string]any{"X-Reason": "rollback of /v1/charges", "X-Tenant": "none"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("charge compensation (-want +got):\n%s", d)
	}

	args = json.RawMessage(`{"method":"PUT","path":"/v1/items/a%2Fb","params":{"id":"a%2Fb"},"query":{},"headers":{},"body":"x"}`)
	out, err = Eval(s.Rule("payments", "put_item").Compensate.Args, args, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"method":"DELETE","path":"/v1/items/a%2Fb"}`; string(out) != want {
		t.Errorf("put_item compensation for an in-doubt step = %s, want %s", out, want)
	}
}

func TestRouteCompensatorCompileError(t *testing.T) {
	cfg := parse(t, routesYAML)
	// Validation compiled the expressions; a program that does not
	// compile still names the route.
	cfg.Routes[0].Compensate.Path.Source = `"/v1/refunds" | bogus_function`
	_, err := New(cfg)
	if err == nil || !strings.Contains(err.Error(), "routes[0].compensate: jq compile error") {
		t.Fatalf("New with a bad route expression = %v, want an error naming routes[0].compensate", err)
	}
}
