package engine_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/agentauth"
	"github.com/agenthelm/agenthelm/engine"
	"github.com/agenthelm/agenthelm/policy"
	"github.com/agenthelm/agenthelm/proxy"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// bearer adds an Authorization header to every request.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// TestTokenSubjectIdentifiesTheAgent: a verified bearer token's subject is
// the agent's identity for the policy (source "token", over what the
// client says about itself) and scopes its saga; a token that does not
// verify is refused before anything is relayed.
func TestTokenSubjectIdentifiesTheAgent(t *testing.T) {
	secret := strings.Repeat("0123456789abcdef", 3)
	v, err := agentauth.New(agentauth.Options{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writePolicy(t, dir, `package agenthelm.authz

default decision := {"allow": false, "require_approval": false, "reasons": ["unidentified agent"]}

decision := {"allow": true, "require_approval": false, "reasons": []} if {
	input.agent.source == "token"
	input.agent.id == "billing-bot"
}
`)
	gate, err := policy.New(context.Background(), policy.Options{Dir: dir, Mode: policy.ModeEnforce})
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, "", engine.Options{Gate: gate, Rules: rules{}}, proxy.Options{VerifyToken: v.Subject})
	sign := func(sub string, key string) string {
		tok := jwt.New()
		_ = tok.Set("sub", sub)
		_ = tok.Set("exp", time.Now().Add(time.Hour))
		b, err := jwt.Sign(tok, jwt.WithKey(jwa.HS256(), []byte(key)))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	connect := func(token string) (*mcp.ClientSession, error) {
		return mcp.NewClient(&mcp.Implementation{Name: "billing-bot", Version: "1"}, nil).Connect(context.Background(),
			&mcp.StreamableClientTransport{Endpoint: s.url, HTTPClient: &http.Client{Transport: bearer{token}}},
			&mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	}

	// The default client has no token: its clientInfo name does not count.
	if res := s.call(t, "create", map[string]any{"name": "a"}); !res.IsError || !strings.Contains(text(res), "unidentified") {
		t.Errorf("call without a token answered %q, want the policy's denial", text(res))
	}
	cs, err := connect(sign("billing-bot", secret))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "create", Arguments: map[string]any{"name": "b"}})
	if err != nil || res.IsError {
		t.Fatalf("call with a valid token answered %v, %v", res, err)
	}
	if _, err := connect(sign("billing-bot", strings.Repeat("x", 48))); err == nil || !strings.Contains(err.Error(), "401") && !strings.Contains(err.Error(), "Unauthorized") {
		t.Errorf("a token signed with another key connected: %v", err)
	}
	if ops, _ := s.led.snapshot(); strings.Join(ops, ", ") != "create b" {
		t.Errorf("upstream ran %v, want only the identified agent's call", ops)
	}
}

func writePolicy(t *testing.T, dir, rego string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "authz.rego"), []byte(rego), 0o644); err != nil {
		t.Fatal(err)
	}
}
