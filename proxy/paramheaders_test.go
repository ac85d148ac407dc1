package proxy

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agenthelm/agenthelm/proxy/upstream"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestParamHeadersLearnedAcrossSessions: the x-mcp-header bindings that
// agenthelm's own tools/list (the start-up check's) shows are used for an
// agent's 2026-07-28 call in another session that sent no Mcp-Param-*
// headers, as a stdio agent behind wrap --upstream cannot, and the official
// SDK's server, which checks them, accepts it.
func TestParamHeadersLearnedAcrossSessions(t *testing.T) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "deploy", Version: "1"}, nil)
	srv.AddTool(&mcp.Tool{Name: "deploy", InputSchema: map[string]any{
		"type":       "object",
		"properties": map[string]any{"region": map[string]any{"type": "string", "x-mcp-header": "Region"}},
	}}, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "deployed"}}}, nil
	})
	up := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv },
		&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true}))
	t.Cleanup(up.Close)
	p, ts := startHTTP(t, Options{Upstreams: map[string]upstream.Spec{"deploy": {Name: "deploy", URL: up.URL, Transport: "streamable-http"}}})

	const meta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"}}`
	call := func(id string) string {
		_, b := post(t, ts.URL+"/mcp/deploy", `{"jsonrpc":"2.0","id":`+id+`,"method":"tools/call","params":{"name":"deploy","arguments":{"region":"eu-west-1"},`+meta+`}}`,
			map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "deploy"})
		return string(lastFrame(t, b).Raw)
	}
	if got := call("1"); !strings.Contains(got, "-32020") {
		t.Fatalf("call before any tools/list = %s, want the server's header mismatch error", got)
	}
	res, err := p.Invoke(context.Background(), "deploy", "", "tools/list", json.RawMessage(`{}`))
	if err != nil || res.Error != nil {
		t.Fatalf("agenthelm's own tools/list: %v %v", err, res.Error)
	}
	if got := call("2"); !strings.Contains(got, "deployed") {
		t.Errorf("call after agenthelm's tools/list = %s, want the tool's result", got)
	}
}

// TestHeadersDisagreeingWithBodyRefused: the HTTP front door refuses a
// 2026-07-28 request whose Mcp-Method, Mcp-Name or (for a tool it has
// listed) Mcp-Param-* header says something other than its body, with 400
// and -32020, and forwards nothing; headers left out are not refused.
func TestHeadersDisagreeingWithBodyRefused(t *testing.T) {
	up, ids := statelessEcho(t)
	rec := &recorder{}
	p, ts := startHTTP(t, Options{Upstreams: map[string]upstream.Spec{"echo": {Name: "echo", URL: up.URL, Transport: "streamable-http"}}, Interceptor: rec})
	th := p.toolHeadersOf("echo")
	th.Learn(json.RawMessage(`{"tools":[{"name":"echo","inputSchema":{"type":"object","properties":{"message":{"type":"string","x-mcp-header":"Message"}}}}]}`))
	const meta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"}}`
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"},` + meta + `}}`
	for _, c := range []struct {
		hdr     map[string]string
		refused string // the header named in the error; "" when forwarded
	}{
		{map[string]string{"Mcp-Method": "tools/list"}, "Mcp-Method"},
		{map[string]string{"Mcp-Name": "rm_rf"}, "Mcp-Name"},
		{map[string]string{"Mcp-Name": "=?base64?ZWNobw==?="}, ""}, // "echo", encoded
		{map[string]string{"Mcp-Param-Message": "bye"}, "Mcp-Param-Message"},
		{map[string]string{"Mcp-Param-Message": "=?base64?aGk=?="}, ""}, // "hi", encoded
		{map[string]string{}, ""},
	} {
		hdr := map[string]string{"Mcp-Protocol-Version": "2026-07-28"}
		for k, v := range c.hdr {
			hdr[k] = v
		}
		before := len(ids.all())
		resp, b := post(t, ts.URL+"/mcp/echo", body, hdr)
		m := lastFrame(t, b)
		switch {
		case c.refused != "" && (resp.StatusCode != http.StatusBadRequest || m.Error == nil || m.Error.Code != CodeHeaderMismatch || !strings.Contains(m.Error.Message, c.refused)):
			t.Errorf("headers %v: %d %s, want 400 with -32020 about %s", c.hdr, resp.StatusCode, b, c.refused)
		case c.refused != "" && len(ids.all()) != before:
			t.Errorf("headers %v: refused, but the upstream got the request", c.hdr)
		case c.refused == "" && (resp.StatusCode != http.StatusOK || m.Error != nil):
			t.Errorf("headers %v: %d %s, want the call forwarded", c.hdr, resp.StatusCode, b)
		}
	}
}
