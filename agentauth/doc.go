// Package agentauth identifies agents by their bearer tokens: it verifies a
// JWT from the Authorization header (signature with configured keys or a
// shared secret, expiry, issuer, audience) and returns the claim that
// names the agent (sub by default).
//
// A verified subject is the strongest agent identity agenthelm knows: a
// header or MCP clientInfo is whatever the agent says it is, a token
// subject is what its issuer signed. The policy sees it as agent.id with
// agent.source "token", and sagas are scoped by it.
//
// agenthelm never passes the agent's token upstream (no token passthrough),
// never journals it, and never logs it.
//
//	v, err := agentauth.New(agentauth.Options{KeysFile: "agents.jwks.json", Issuer: "https://idp.example"})
//	sub, err := v.Subject(r.Header.Get("Authorization")) // "" and nil without a token
package agentauth
