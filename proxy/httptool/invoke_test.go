package httptool

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/agenthelm/agenthelm/internal/paymentsapi"
	"github.com/agenthelm/agenthelm/proxy/upstream"
	"github.com/agenthelm/agenthelm/toolcall"
)

// TestInvoke sends a compensation as the engine builds it.
func TestInvoke(t *testing.T) {
	api := paymentsapi.Start(t)
	p, _ := startProxy(t, paymentsOptions(api, nil))
	ctx := context.Background()
	charge := send(t, "POST", "http://"+api.Addr()+"/v1/charges", `{"amount":9,"currency":"eur"}`)
	if charge.status != 201 {
		t.Fatalf("charge: %d %s", charge.status, charge.body)
	}
	params := json.RawMessage(`{"name":"POST /v1/refunds","arguments":{"method":"POST","path":"/v1/refunds?reason=saga","body":{"charge":"ch_1"},"headers":{"X-Reason":"rollback","Idempotency-Key":"configured"}},"_meta":{"io.agenthelm/idempotency-key":"ah-COMP","traceparent":"00-11111111111111111111111111111111-2222222222222222-01"}}`)
	res, err := p.Invoke(ctx, "payments", "ignored-session", "tools/call", params)
	if err != nil {
		t.Fatal(err)
	}
	if res.IsToolError() || !strings.Contains(string(res.Result), `"status":201`) {
		t.Errorf("refund result %s", res.Result)
	}
	// The same key again: the API replays its answer and refunds once.
	if _, err := p.Invoke(ctx, "payments", "", "tools/call", params); err != nil {
		t.Fatal(err)
	}
	if refunds := api.Refunds(); len(refunds) != 1 || refunds[0].Key != "ah-COMP" {
		t.Errorf("refunds %+v, want one under ah-COMP", refunds)
	}
	q := api.Requests()[1]
	if q.URI != "/v1/refunds?reason=saga" || q.Body != `{"charge":"ch_1"}` || q.Header.Get("X-Reason") != "rollback" ||
		q.Header.Get("X-Api-Key") != "sk_test_configured" || q.Header.Get("Content-Type") != "application/json" ||
		q.Header.Get("Traceparent") == "" {
		t.Errorf("refund request %+v", q)
	}

	// A 404 is a tool error: the engine retries, then the saga is stuck.
	res, err = p.Invoke(ctx, "payments", "", "tools/call", json.RawMessage(`{"name":"x","arguments":{"method":"DELETE","path":"/v1/charges/nope","query":{"force":["1","2"],"why":"x"}}}`))
	if err != nil || !res.IsToolError() {
		t.Errorf("DELETE of an unknown charge = %s, %v; want a tool error", res.Result, err)
	}
	if got := api.Requests()[3].URI; got != "/v1/charges/nope?force=1&force=2&why=x" {
		t.Errorf("query sent as %s", got)
	}
}

func TestInvokeRefusesBadRequests(t *testing.T) {
	api := paymentsapi.Start(t)
	p, _ := startProxy(t, paymentsOptions(api, nil))
	ctx := context.Background()
	for _, tc := range []struct{ args, want string }{
		{`{"method":"post","path":"/v1/refunds"}`, `method "post": want an HTTP method in upper case`},
		{`{"method":"POST","path":"v1/refunds"}`, `path "v1/refunds": want a path that starts with /`},
		{`{"method":"POST","path":null}`, `path "": want a path that starts with /`},
		{`{"method":"POST","path":"/a","headers":{"X-N":1}}`, `headers.X-N is 1: want a string`},
		{`{"method":"POST","path":"/a","headers":{"X N":"v"}}`, `headers.X N: not a valid header name and value`},
		{`{"method":"POST","path":"/a","query":{"a":{}}}`, `query.a is {}: want a string or an array of strings`},
		{`"refund"`, `want {method, path, body, headers}`},
	} {
		params := json.RawMessage(`{"name":"c","arguments":` + tc.args + `}`)
		_, err := p.Invoke(ctx, "payments", "", "tools/call", params)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "request to REST upstream payments") {
			t.Errorf("Invoke(%s) = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
	if n := len(api.Requests()); n != 0 {
		t.Errorf("the API got %d requests", n)
	}
	if _, err := p.Invoke(ctx, "nope", "", "tools/call", nil); !errors.Is(err, toolcall.ErrUnknownUpstream) {
		t.Errorf("unknown upstream: %v", err)
	}
	if _, err := p.Invoke(ctx, "payments", "", "tools/list", nil); err == nil {
		t.Error("tools/list was accepted")
	}
}

// TestInvokeSpec reaches an upstream the configuration no longer names at
// the URL the journal recorded (rule 29), and not through the front door.
func TestInvokeSpec(t *testing.T) {
	api := paymentsapi.Start(t)
	p, base := startProxy(t, Options{})
	params := json.RawMessage(`{"name":"c","arguments":{"method":"DELETE","path":"/v1/charges/ch_1"},"_meta":{"io.agenthelm/idempotency-key":"k"}}`)
	spec := upstream.Spec{Name: "old", Transport: "http", URL: api.URL}
	res, err := p.InvokeSpec(context.Background(), spec, nil, "tools/call", params)
	if err != nil || !res.IsToolError() {
		t.Fatalf("InvokeSpec = %s, %v; want the API's 404 as a tool error", res.Result, err)
	}
	if reqs := api.Requests(); len(reqs) != 1 || reqs[0].URI != "/v1/charges/ch_1" || reqs[0].Header.Get("Idempotency-Key") != "k" {
		t.Errorf("the API got %+v", reqs)
	}
	if !p.Has("old") {
		t.Error("Has(old) = false after InvokeSpec")
	}
	if r := send(t, "GET", base+"/old/v1/charges", ""); r.status != 404 {
		t.Errorf("agents reached a recorded upstream: %d %s", r.status, r.body)
	}
	spec.Transport = "stdio"
	if _, err := p.InvokeSpec(context.Background(), spec, nil, "tools/call", params); !errors.Is(err, toolcall.ErrUnknownUpstream) {
		t.Errorf("InvokeSpec of a stdio spec = %v", err)
	}
}
