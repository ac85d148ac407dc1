package proxy

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
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

// TestOperatorSessionStateless: an upstream that speaks only 2026-07-28
// (it refuses initialize) still gets agenthelm's own requests, such as
// compensations: each carries the protocol version and client info in
// _meta, keeps the _meta it had (the idempotency key), and the mirrored
// headers the revision requires.
func TestOperatorSessionStateless(t *testing.T) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "modern", Version: "1"}, nil)
	srv.AddTool(&mcp.Tool{Name: "refund", InputSchema: map[string]any{
		"type":       "object",
		"properties": map[string]any{"region": map[string]any{"type": "string", "x-mcp-header": "Region"}},
	}}, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "refunded"}}}, nil
	})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true})
	var mu sync.Mutex
	var metas []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), `"method":"initialize"`) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":"agenthelm-1","error":{"code":-32601,"message":"initialize is not supported: this server speaks 2026-07-28"}}`))
			return
		}
		if strings.Contains(string(body), `"tools/call"`) {
			mu.Lock()
			defer mu.Unlock()
			metas = append(metas, r.Header.Get("Mcp-Param-Region")+" "+string(jsonrpc.Member(jsonrpc.Member(mustParse(t, body).Params, "_meta"), "io.agenthelm/idempotency-key")))
		}
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	p, _ := startHTTP(t, Options{Upstreams: map[string]upstream.Spec{"modern": {Name: "modern", URL: up.URL, Transport: "streamable-http"}}})
	ctx := context.Background()
	if res, err := p.Invoke(ctx, "modern", "", "tools/list", nil); err != nil || res.Error != nil {
		t.Fatalf("tools/list: %v %v", err, res.Error)
	}
	res, err := p.Invoke(ctx, "modern", "", "tools/call",
		json.RawMessage(`{"name":"refund","arguments":{"region":"eu-west-1"},"_meta":{"io.agenthelm/idempotency-key":"s1/2/compensate"}}`))
	if err != nil || res.Error != nil || !strings.Contains(string(res.Result), "refunded") {
		t.Fatalf("compensation through the operator session: %s %v %v", res.Result, res.Error, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(metas) != 1 || metas[0] != `eu-west-1 "s1/2/compensate"` {
		t.Errorf("the upstream saw %q, want the Region header and the idempotency key kept", metas)
	}
}

func mustParse(t *testing.T, body []byte) *jsonrpc.Message {
	t.Helper()
	m, perr := jsonrpc.Parse(body)
	if perr != nil {
		t.Fatalf("parse %s: %v", body, perr)
	}
	return m
}
