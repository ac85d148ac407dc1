package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/agenthelm/agenthelm/internal/paymentsapi"
)

// TestServeAgentToken: with saga.agent_token set, serve verifies agents'
// bearer tokens at the front door. A verified subject is what the policy
// sees as the agent (source "token"); a missing token (required) or one
// signed with another key is refused with 401 and reaches nothing.
func TestServeAgentToken(t *testing.T) {
	secret := strings.Repeat("agenthelm-test-", 3)
	t.Setenv("AGENTHELM_TEST_PAYMENTS_KEY", "k")
	t.Setenv("AGENTHELM_TEST_AGENT_SECRET", secret)
	dir := t.TempDir()
	rego := `package agenthelm.authz

default decision := {"allow": false, "require_approval": false, "reasons": ["no agent"]}

decision := {"allow": true, "require_approval": false, "reasons": []} if billing_bot

decision := {"allow": false, "require_approval": false, "reasons": [sprintf("agent %s (%s) may not charge", [input.agent.id, input.agent.source])]} if not billing_bot

billing_bot if {
	input.agent.source == "token"
	input.agent.id == "billing-bot"
}
`
	if err := os.WriteFile(filepath.Join(dir, "authz.rego"), []byte(rego), 0o644); err != nil {
		t.Fatal(err)
	}
	api := paymentsapi.Start(t)
	cfg := strings.Replace(restConfig(api, dir), "saga: {idle_commit: 1h}",
		`saga: {idle_commit: 1h, agent_token: {secret: "${AGENTHELM_TEST_AGENT_SECRET}", required: true}}`, 1)
	sp := startServe(t, cfg)
	sign := func(sub, key string) string {
		tok := jwt.New()
		_ = tok.Set("sub", sub)
		_ = tok.Set("exp", time.Now().Add(time.Hour))
		b, err := jwt.Sign(tok, jwt.WithKey(jwa.HS256(), []byte(key)))
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + string(b)
	}
	charge := "http://" + sp.http + "/payments/v1/charges"
	body := `{"amount":100,"currency":"eur"}`

	if r := httpDo(t, "POST", charge, body, "Authorization", sign("billing-bot", secret), "X-Agent-Id", "someone-else"); r.status != http.StatusCreated {
		t.Fatalf("charge with a valid token: %d %s", r.status, r.body)
	}
	r := httpDo(t, "POST", charge, body, "Authorization", sign("support-bot", secret))
	if pr := problemFrom(t, r); r.status != http.StatusForbidden || len(pr.Reasons) != 1 || pr.Reasons[0] != "agent support-bot (token) may not charge" {
		t.Errorf("charge by another verified agent: %d %s", r.status, r.body)
	}
	for name, auth := range map[string]string{"no token": "", "forged token": sign("billing-bot", strings.Repeat("x", 40))} {
		r := httpDo(t, "POST", charge, body, "Authorization", auth)
		if pr := problemFrom(t, r); r.status != http.StatusUnauthorized || pr.Code != "invalid_token" {
			t.Errorf("%s: %d %s, want 401 invalid_token", name, r.status, r.body)
		}
		// The MCP front door refuses it the same way.
		req, _ := http.NewRequest("POST", "http://"+sp.mcp+"/mcp/payments", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "invalid_token") {
			t.Errorf("%s at the MCP door: %d %v, want 401", name, resp.StatusCode, resp.Header)
		}
	}
	if n := len(api.Charges()); n != 1 {
		t.Errorf("the API has %d charges, want the verified agent's one", n)
	}
	for _, q := range api.Requests() {
		if q.Header.Get("Authorization") != "" {
			t.Errorf("the agent's token reached the API: %v", q.Header)
		}
	}
}
