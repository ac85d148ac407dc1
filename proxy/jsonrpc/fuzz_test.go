package jsonrpc

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzParse checks that Parse never panics and that what it returns holds
// together: an error has a standard code and carries at most the id; a
// message keeps its bytes, its fields agree with Member's reading of the
// frame, and WithID and SetMember work on it.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":[1,2]},"_meta":{"progressToken":"p"}}}`,
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"a"}}`,
		`{"jsonrpc":"2.0","id":"r1","result":{"content":[{"type":"text","text":"ok"}],"isError":false}}`,
		`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error","data":null}}`,
		`{"id":1e3,"method":"m","jsonrpc":"2.0","params":[]}`,
		`[{"jsonrpc":"2.0","id":1,"method":"m"}]`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","METHOD":"tools/call"}`,
		`{"jsonrpc":"2.0","id":1,"method":"m","params":{"_meta":{},"_meta":{}}}`,
		" {\"jsonrpc\":\"2.0\",\"id\":\"\\u0031\",\"method\":\"\\u006d\"}\r\n",
		`{"jsonrpc":"2.0","id":-0.0e+00,"result":null}`,
		`null`, ``, `{`, `"x"`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, rpcErr := Parse(data)
		if rpcErr != nil {
			if rpcErr.Code != CodeParseError && rpcErr.Code != CodeInvalidRequest {
				t.Fatalf("Parse(%q) error code %d", data, rpcErr.Code)
			}
			if rpcErr.Message == "" {
				t.Fatalf("Parse(%q) error without a message", data)
			}
			if msg != nil && (msg.Raw != nil || msg.Kind != 0 || !validID(msg.ID)) {
				t.Fatalf("Parse(%q) error carries %+v", data, msg)
			}
			// The error can always be answered.
			if _, perr := Parse(NewErrorResponse(nil, rpcErr).Raw); perr != nil {
				t.Fatalf("error response for %q does not parse: %v", data, perr)
			}
			return
		}
		if !bytes.Equal(msg.Raw, bytes.TrimSpace(data)) {
			t.Fatalf("Parse(%q).Raw = %q", data, msg.Raw)
		}
		// Parse's fields agree with a byte-level reading of the same frame,
		// which is what the proxy edits and forwards.
		if got := Member(msg.Raw, "id"); !bytes.Equal(got, msg.ID) {
			t.Fatalf("Parse(%q).ID = %s, Member = %s", data, msg.ID, got)
		}
		switch msg.Kind {
		case KindRequest, KindNotification:
			var method string
			if err := json.Unmarshal(Member(msg.Raw, "method"), &method); err != nil || method != msg.Method || method == "" {
				t.Fatalf("Parse(%q).Method = %q, Member = %q (%v)", data, msg.Method, method, err)
			}
			if (msg.Kind == KindRequest) != (msg.ID != nil) {
				t.Fatalf("Parse(%q): %v with id %s", data, msg.Kind, msg.ID)
			}
		case KindResponse:
			if msg.Result == nil || msg.ID == nil {
				t.Fatalf("Parse(%q): response without result or id", data)
			}
		case KindErrorResponse:
			if msg.Error == nil || msg.ID == nil {
				t.Fatalf("Parse(%q): error response without error or id", data)
			}
		default:
			t.Fatalf("Parse(%q).Kind = %v", data, msg.Kind)
		}
		if msg.Params != nil && msg.Params[0] != '{' && msg.Params[0] != '[' {
			t.Fatalf("Parse(%q).Params = %s", data, msg.Params)
		}
		_ = msg.IDKey()
		if msg.ID == nil {
			return
		}
		// Re-addressing changes the id and nothing else.
		re, err := WithID(msg, json.RawMessage(`"agenthelm-1"`))
		if err != nil {
			t.Fatalf("WithID(%q): %v", data, err)
		}
		if re.Kind != msg.Kind || re.Method != msg.Method || !bytes.Equal(re.Params, msg.Params) ||
			!bytes.Equal(re.Result, msg.Result) || re.IDKey() != "s:agenthelm-1" ||
			len(re.Raw)-len(`"agenthelm-1"`) != len(msg.Raw)-len(msg.ID) {
			t.Fatalf("WithID(%q) = %s", data, re.Raw)
		}
		back, err := WithID(re, msg.ID)
		if err != nil || !bytes.Equal(back.Raw, msg.Raw) {
			t.Fatalf("WithID(WithID(%q)) = %s, %v; want the original", data, back.Raw, err)
		}
		// Adding _meta to object params gives valid JSON in which Member
		// finds it, unless the params make the member ambiguous.
		if msg.Kind == KindRequest && msg.Params != nil && msg.Params[0] == '{' {
			p, err := SetMember(msg.Params, "_meta", json.RawMessage(`{"io.agenthelm/saga":"s"}`))
			if err != nil {
				return
			}
			if !json.Valid(p) || string(Member(p, "_meta")) != `{"io.agenthelm/saga":"s"}` {
				t.Fatalf("SetMember(%s, _meta) = %s", msg.Params, p)
			}
			if _, err := SetMember(msg.Raw, "params", p); err != nil {
				t.Fatalf("SetMember(frame, params): %v", err)
			}
		}
	})
}
