package upstream

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// deployServer is a stateless 2026-era server written with the official
// SDK whose tool deploy mirrors three arguments into headers
// (x-mcp-header), which the SDK checks against the body on every call.
func deployServer(t *testing.T) *harness {
	srv := mcp.NewServer(&mcp.Implementation{Name: "deploy", Version: "1"}, nil)
	srv.AddTool(&mcp.Tool{Name: "deploy", InputSchema: map[string]any{
		"type": "object",
		"properties": map[string]any{
			"region":   map[string]any{"type": "string", "x-mcp-header": "Region"},
			"replicas": map[string]any{"type": "integer", "x-mcp-header": "Replicas"},
			"target": map[string]any{"type": "object", "properties": map[string]any{
				"dry_run": map[string]any{"type": "boolean", "x-mcp-header": "Dry-Run"},
			}},
			"app": map[string]any{"type": "string"},
		},
	}}, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		var in struct {
			Region string `json:"region"`
		}
		_ = json.Unmarshal(req.Params.Arguments, &in)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "deployed to " + in.Region}}}, nil
	})
	return newHarness(t, mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv },
		&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true}), nil)
}

// TestParamHeadersFromArguments: once a tools/list answer has shown which
// arguments a tool mirrors into headers, a 2026-07-28 tools/call carries
// them computed from its arguments, whatever the agent's headers said, and
// the official SDK's server, which checks them, accepts the call.
func TestParamHeadersFromArguments(t *testing.T) {
	hs := deployServer(t)
	conn, rec, _ := dialHTTP(t, Spec{URL: hs.srv.URL})
	call := func(id, args string, agent http.Header) {
		t.Helper()
		raw := `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"deploy","arguments":` + args + `,` + meta2026 + `}}`
		if err := conn.Send(context.Background(), frame(t, raw), SendOptions{Header: agent}); err != nil {
			t.Fatalf("Send(%s): %v", raw, err)
		}
	}

	// Before any tools/list the conn knows nothing to mirror: the server
	// refuses the call (the check this test relies on is real).
	call("1", `{"region":"eu-west-1","app":"shop"}`, nil)
	if f := rec.response(t, "1"); f.msg.Error == nil || f.msg.Error.Code != -32020 || !strings.Contains(f.msg.Error.Message, "Mcp-Param-Region") {
		t.Fatalf("call before tools/list: %s, want the server's header mismatch error (-32020) about Mcp-Param-Region", f.msg.Raw)
	}

	send(t, conn, `{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{`+meta2026+`}}`)
	rec.response(t, "2")

	cases := []struct {
		id, args string
		agent    http.Header
		want     http.Header // the Mcp-Param-* headers the server must see
	}{
		{"3", `{"region":"eu-west-1","replicas":3,"target":{"dry_run":true},"app":"shop"}`, nil,
			http.Header{"Mcp-Param-Region": {"eu-west-1"}, "Mcp-Param-Replicas": {"3"}, "Mcp-Param-Dry-Run": {"true"}}},
		// The agent's headers disagree with its arguments: the arguments
		// win (they are what the policy judged), and a header for no
		// argument is dropped.
		{"4", `{"region":"eu-west-1","replicas":2.0}`,
			http.Header{"Mcp-Param-Region": {"us-east-1"}, "Mcp-Param-Tenant": {"other"}, "Mcp-Param-Dry-Run": {"false"}},
			http.Header{"Mcp-Param-Region": {"eu-west-1"}, "Mcp-Param-Replicas": {"2"}}},
		// Null and absent arguments have no header; a value that cannot
		// travel as it is goes base64-encoded.
		{"5", `{"region":"Zürich ","replicas":null}`, nil,
			http.Header{"Mcp-Param-Region": {"=?base64?WsO8cmljaCA=?="}}},
	}
	for _, c := range cases {
		call(c.id, c.args, c.agent)
		f := rec.response(t, c.id)
		if f.msg.Error != nil || !strings.Contains(string(f.msg.Result), "deployed to") {
			t.Errorf("call %s: %s, want the tool's result", c.id, f.msg.Raw)
			continue
		}
		post := hs.postFor(f.msg.Raw)
		if post == nil {
			t.Fatalf("call %s: its POST was not recorded", c.id)
		}
		got := http.Header{}
		for k, v := range post.header {
			if strings.HasPrefix(k, "Mcp-Param-") {
				got[k] = v
			}
		}
		if !equalHeaders(got, c.want) {
			t.Errorf("call %s: the server saw %v, want %v", c.id, got, c.want)
		}
	}
}

func equalHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if strings.Join(v, ",") != strings.Join(b[k], ",") {
			return false
		}
	}
	return true
}

// TestParamBindings: which annotations count, and the tools whose
// annotations break the rules (they then mirror nothing, as a conforming
// server enforces none of them).
func TestParamBindings(t *testing.T) {
	cases := []struct {
		schema  string
		want    string // "path=header" pairs, sorted
		invalid bool
	}{
		{`{"type":"object","properties":{"a":{"type":"string","x-mcp-header":"A"},"b":{"type":"string"}}}`, "a=Mcp-Param-A", false},
		{`{"type":"object","properties":{"o":{"type":"object","properties":{"n":{"type":"integer","x-mcp-header":"x.y"}}}}}`, "o.n=Mcp-Param-X.y", false},
		{`{"type":"object","properties":{"a":{"type":"number","x-mcp-header":"A"}}}`, "", true},
		{`{"type":"object","properties":{"a":{"type":"string","x-mcp-header":"bad name"}}}`, "", true},
		{`{"type":"object","properties":{"a":{"type":"string","x-mcp-header":""}}}`, "", true},
		{`{"type":"object","properties":{"a":{"type":"string","x-mcp-header":"R"},"b":{"type":"boolean","x-mcp-header":"r"}}}`, "", true},
		{`{"type":"object"}`, "", false},
		{``, "", false},
	}
	for _, c := range cases {
		b, err := paramBindings(json.RawMessage(c.schema))
		var pairs []string
		for _, x := range b {
			pairs = append(pairs, strings.Join(x.path, ".")+"="+x.header)
		}
		got := strings.Join(pairs, " ")
		if (err != nil) != c.invalid || (!c.invalid && got != c.want) {
			t.Errorf("paramBindings(%s) = %q, %v; want %q, invalid %v", c.schema, got, err, c.want, c.invalid)
		}
	}

	// A tool with an invalid annotation is known, with nothing to mirror:
	// the agent's own Mcp-Param-* headers are dropped too.
	th := NewToolHeaders()
	list := json.RawMessage(`{"tools":[{"name":"t","inputSchema":{"type":"object","properties":{"a":{"type":"number","x-mcp-header":"A"}}}}]}`)
	if invalid := th.Learn(list); invalid["t"] == nil || len(invalid) != 1 {
		t.Errorf("Learn reported %v, want tool t's invalid annotation", invalid)
	}
	if invalid := th.Learn(list); len(invalid) != 0 {
		t.Errorf("the second Learn reported %v again, want it reported once", invalid)
	}
	h := http.Header{"Mcp-Param-A": {"1"}, "Mcp-Name": {"t"}}
	th.apply(h, json.RawMessage(`{"name":"t","arguments":{"a":1}}`))
	if len(h) != 1 || h.Get("Mcp-Name") != "t" {
		t.Errorf("headers of a call to a tool with invalid annotations = %v, want only Mcp-Name", h)
	}
	// A tool no tools/list showed keeps the agent's headers.
	h = http.Header{"Mcp-Param-A": {"1"}}
	th.apply(h, json.RawMessage(`{"name":"unknown","arguments":{"a":1}}`))
	if h.Get("Mcp-Param-A") != "1" {
		t.Errorf("headers of a call to an unknown tool = %v, want the agent's", h)
	}
}

// FuzzParamHeaders: whatever the schema and arguments, the headers apply
// computes for a call never disagree with that call for Mismatch (the
// front door's check), and neither panics.
func FuzzParamHeaders(f *testing.F) {
	f.Add(`{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"},"n":{"type":"integer","x-mcp-header":"N"}}}`,
		`{"region":"Zürich ","n":2.0}`)
	f.Add(`{"properties":{"o":{"type":"object","properties":{"b":{"type":"boolean","x-mcp-header":"B"}}}}}`, `{"o":{"b":false}}`)
	f.Add(`{"properties":{"s":{"type":"string","x-mcp-header":"S"}}}`, `{"s":"=?base64?eA==?="}`)
	f.Add(`{"properties":{"s":{"type":"string","x-mcp-header":"S"}}}`, `{"s":null}`)
	f.Fuzz(func(t *testing.T, schema, args string) {
		tool, err := json.Marshal(map[string]any{"tools": []map[string]any{{"name": "t", "inputSchema": json.RawMessage(schema)}}})
		if err != nil || !json.Valid([]byte(schema)) || !json.Valid([]byte(args)) {
			return
		}
		th := NewToolHeaders()
		th.Learn(tool)
		params := json.RawMessage(`{"name":"t","arguments":` + args + `}`)
		h := http.Header{}
		th.apply(h, params)
		msg := frame(t, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":`+string(params)+`}`)
		h.Set("Mcp-Method", "tools/call")
		h.Set("Mcp-Name", "t")
		if err := Mismatch(h, msg, th); err != nil {
			t.Errorf("computed headers %v disagree with the call %s: %v", h, params, err)
		}
	})
}
