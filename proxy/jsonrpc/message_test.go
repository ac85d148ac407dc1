package jsonrpc

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		kind   Kind   // on success
		method string // on success
		id     string // the id's bytes: on success, or carried by the error's Message
		code   int    // 0: success
	}{
		// Requests and notifications.
		{name: "request", in: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}`, kind: KindRequest, method: "tools/call", id: `1`},
		{name: "request string id", in: `{"jsonrpc":"2.0","id":"abc-1","method":"ping"}`, kind: KindRequest, method: "ping", id: `"abc-1"`},
		{name: "request negative id", in: `{"jsonrpc":"2.0","id":-7,"method":"ping"}`, kind: KindRequest, method: "ping", id: `-7`},
		{name: "request exponent id", in: `{"jsonrpc":"2.0","id":1e3,"method":"ping"}`, kind: KindRequest, method: "ping", id: `1e3`},
		{name: "request params array", in: `{"jsonrpc":"2.0","id":2,"method":"m","params":[1,2]}`, kind: KindRequest, method: "m", id: `2`},
		{name: "request params null", in: `{"jsonrpc":"2.0","id":2,"method":"m","params":null}`, kind: KindRequest, method: "m", id: `2`},
		{name: "members in any order", in: `{"params":{},"method":"m","id":3,"jsonrpc":"2.0"}`, kind: KindRequest, method: "m", id: `3`},
		{name: "surrounding whitespace", in: " \t\r\n{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"m\"}\r\n ", kind: KindRequest, method: "m", id: `4`},
		{name: "unknown members", in: `{"jsonrpc":"2.0","id":5,"method":"m","x-extra":{"a":[1]}}`, kind: KindRequest, method: "m", id: `5`},
		{name: "notification", in: `{"jsonrpc":"2.0","method":"notifications/initialized"}`, kind: KindNotification, method: "notifications/initialized"},
		{name: "notification with params", in: `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`, kind: KindNotification, method: "notifications/cancelled"},

		// Responses.
		{name: "response", in: `{"jsonrpc":"2.0","id":1,"result":{"content":[]}}`, kind: KindResponse, id: `1`},
		{name: "response null result", in: `{"jsonrpc":"2.0","id":"r","result":null}`, kind: KindResponse, id: `"r"`},
		{name: "error response", in: `{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"nope","data":{"x":1}}}`, kind: KindErrorResponse, id: `1`},
		{name: "error response null id", in: `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}`, kind: KindErrorResponse, id: `null`},

		// Not JSON.
		{name: "empty", in: ``, code: CodeParseError},
		{name: "blank", in: " \r\n\t", code: CodeParseError},
		{name: "truncated", in: `{"jsonrpc":"2.0","id":1`, code: CodeParseError},
		{name: "trailing garbage", in: `{"jsonrpc":"2.0","id":1,"method":"m"} x`, code: CodeParseError},
		{name: "two objects", in: `{"jsonrpc":"2.0","method":"a"}{"jsonrpc":"2.0","method":"b"}`, code: CodeParseError},

		// JSON, but not one JSON-RPC message.
		{name: "batch", in: `[{"jsonrpc":"2.0","id":1,"method":"m"}]`, code: CodeInvalidRequest},
		{name: "empty batch", in: `[]`, code: CodeInvalidRequest},
		{name: "number", in: `1`, code: CodeInvalidRequest},
		{name: "string", in: `"x"`, code: CodeInvalidRequest},
		{name: "null", in: `null`, code: CodeInvalidRequest},
		{name: "wrong version", in: `{"jsonrpc":"1.0","id":9,"method":"m"}`, id: `9`, code: CodeInvalidRequest},
		{name: "missing version", in: `{"id":9,"method":"m"}`, id: `9`, code: CodeInvalidRequest},
		{name: "version null", in: `{"jsonrpc":null,"id":9,"method":"m"}`, id: `9`, code: CodeInvalidRequest},
		{name: "version not a string", in: `{"jsonrpc":2.0,"id":9,"method":"m"}`, code: CodeInvalidRequest},
		{name: "null id request", in: `{"jsonrpc":"2.0","id":null,"method":"m"}`, code: CodeInvalidRequest},
		{name: "bool id", in: `{"jsonrpc":"2.0","id":true,"method":"m"}`, code: CodeInvalidRequest},
		{name: "object id", in: `{"jsonrpc":"2.0","id":{"a":1},"method":"m"}`, code: CodeInvalidRequest},
		{name: "array id", in: `{"jsonrpc":"2.0","id":[1],"method":"m"}`, code: CodeInvalidRequest},
		{name: "params string", in: `{"jsonrpc":"2.0","id":1,"method":"m","params":"x"}`, id: `1`, code: CodeInvalidRequest},
		{name: "params number", in: `{"jsonrpc":"2.0","id":1,"method":"m","params":5}`, id: `1`, code: CodeInvalidRequest},
		{name: "params bool", in: `{"jsonrpc":"2.0","method":"m","params":true}`, code: CodeInvalidRequest},
		{name: "empty method", in: `{"jsonrpc":"2.0","id":1,"method":""}`, id: `1`, code: CodeInvalidRequest},
		{name: "method not a string", in: `{"jsonrpc":"2.0","id":1,"method":5}`, code: CodeInvalidRequest},
		{name: "method with result", in: `{"jsonrpc":"2.0","id":1,"method":"m","result":{}}`, id: `1`, code: CodeInvalidRequest},
		{name: "method with error", in: `{"jsonrpc":"2.0","id":1,"method":"m","error":{"code":1,"message":"x"}}`, id: `1`, code: CodeInvalidRequest},
		{name: "result and error", in: `{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}`, id: `1`, code: CodeInvalidRequest},
		{name: "response without id", in: `{"jsonrpc":"2.0","result":{}}`, code: CodeInvalidRequest},
		{name: "response null id", in: `{"jsonrpc":"2.0","id":null,"result":{}}`, code: CodeInvalidRequest},
		{name: "error null", in: `{"jsonrpc":"2.0","id":1,"error":null}`, id: `1`, code: CodeInvalidRequest},
		{name: "error not an object", in: `{"jsonrpc":"2.0","id":1,"error":"bad"}`, id: `1`, code: CodeInvalidRequest},
		{name: "error code not an integer", in: `{"jsonrpc":"2.0","id":1,"error":{"code":1.5,"message":"x"}}`, id: `1`, code: CodeInvalidRequest},
		{name: "error response without id", in: `{"jsonrpc":"2.0","error":{"code":-32700,"message":"x"}}`, code: CodeInvalidRequest},
		{name: "nothing to do", in: `{"jsonrpc":"2.0","id":1}`, id: `1`, code: CodeInvalidRequest},
		{name: "empty object", in: `{}`, code: CodeInvalidRequest},

		// Members that readers would disagree about: JSON.parse takes the
		// last of two equal keys, Go's encoding/json also matches keys
		// case-insensitively. A proxy that routed on one reading while the
		// server acted on another could be steered past its policy.
		{name: "duplicate method", in: `{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"tools/list"}`, code: CodeInvalidRequest},
		{name: "method in other case", in: `{"jsonrpc":"2.0","id":1,"method":"tools/list","METHOD":"tools/call"}`, code: CodeInvalidRequest},
		{name: "duplicate id", in: `{"jsonrpc":"2.0","id":1,"id":2,"method":"m"}`, code: CodeInvalidRequest},
		{name: "duplicate params", in: `{"jsonrpc":"2.0","id":1,"method":"m","params":{},"Params":{}}`, code: CodeInvalidRequest},
		{name: "version in other case", in: `{"jsonrpc":"1.0","JSONRPC":"2.0","id":1,"method":"m"}`, code: CodeInvalidRequest},
		{name: "id in other case", in: `{"jsonrpc":"2.0","ID":1,"method":"m"}`, code: CodeInvalidRequest},
		{name: "version name in other case", in: `{"jsonrpC":"2.0","id":1,"result":{}}`, code: CodeInvalidRequest},
		{name: "method name folded", in: "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"\u006Dethod\":\"x\"}", code: CodeInvalidRequest},
		{name: "long s folds to s", in: "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"param\u017F\":{}}", code: CodeInvalidRequest},
		{name: "near miss is another member", in: `{"jsonrpc":"2.0","id":1,"method":"m","methods":1,"_id":2}`, kind: KindRequest, method: "m", id: `1`},
		{name: "duplicate unknown member", in: `{"jsonrpc":"2.0","id":1,"method":"m","x":1,"x":2}`, kind: KindRequest, method: "m", id: `1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, rpcErr := Parse([]byte(tt.in))
			if tt.code != 0 {
				if rpcErr == nil {
					t.Fatalf("Parse(%s) = %v, want error %d", tt.in, msg.Kind, tt.code)
				}
				if rpcErr.Code != tt.code {
					t.Errorf("Parse(%s) error code = %d (%s), want %d", tt.in, rpcErr.Code, rpcErr.Message, tt.code)
				}
				if rpcErr.Message == "" {
					t.Errorf("Parse(%s) error has no message", tt.in)
				}
				switch {
				case tt.id == "" && msg != nil:
					t.Errorf("Parse(%s) error carries %+v, want nil", tt.in, msg)
				case tt.id != "" && (msg == nil || string(msg.ID) != tt.id):
					t.Errorf("Parse(%s) error carries %+v, want id %s", tt.in, msg, tt.id)
				case msg != nil && (msg.Raw != nil || msg.Kind != 0 || msg.Method != ""):
					t.Errorf("Parse(%s) error carries more than the id: %+v", tt.in, msg)
				}
				return
			}
			if rpcErr != nil {
				t.Fatalf("Parse(%s) error %d: %s", tt.in, rpcErr.Code, rpcErr.Message)
			}
			if msg.Kind != tt.kind {
				t.Errorf("Parse(%s).Kind = %v, want %v", tt.in, msg.Kind, tt.kind)
			}
			if msg.Method != tt.method {
				t.Errorf("Parse(%s).Method = %q, want %q", tt.in, msg.Method, tt.method)
			}
			if string(msg.ID) != tt.id {
				t.Errorf("Parse(%s).ID = %s, want %s", tt.in, msg.ID, tt.id)
			}
			if want := bytes.TrimSpace([]byte(tt.in)); !bytes.Equal(msg.Raw, want) {
				t.Errorf("Parse(%s).Raw = %s, want the input without surrounding space", tt.in, msg.Raw)
			}
			if msg.IsRequest() != (tt.kind == KindRequest) || msg.IsResponse() != (tt.kind == KindResponse || tt.kind == KindErrorResponse) {
				t.Errorf("Parse(%s): IsRequest %v, IsResponse %v for %v", tt.in, msg.IsRequest(), msg.IsResponse(), msg.Kind)
			}
		})
	}
}

func TestParseFields(t *testing.T) {
	msg, rpcErr := Parse([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":null}`))
	if rpcErr != nil || msg.Params != nil {
		t.Errorf("params null: Params = %s, %v; want nil", msg.Params, rpcErr)
	}
	msg, _ = Parse([]byte(`{"jsonrpc":"2.0","method":"m"}`))
	if msg.ID != nil || msg.Params != nil {
		t.Errorf("notification: ID = %s, Params = %s; want nil, nil", msg.ID, msg.Params)
	}
	msg, _ = Parse([]byte(`{"jsonrpc":"2.0","id":1,"result":null}`))
	if string(msg.Result) != "null" {
		t.Errorf("result null: Result = %q, want null", msg.Result)
	}
	msg, _ = Parse([]byte(`{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"bad","data":{"field":"x"}}}`))
	if msg.Error == nil || msg.Error.Code != CodeInvalidParams || msg.Error.Message != "bad" || string(msg.Error.Data) != `{"field":"x"}` {
		t.Errorf("error response: Error = %+v", msg.Error)
	}
}

// Raw, ID, Params and Result keep the frame's bytes exactly: no key
// reordering, number rewriting, escape changes or whitespace changes.
func TestParseKeepsBytes(t *testing.T) {
	tests := []struct {
		in, id, params, result string
	}{
		{
			in:     `{"params":{"name":"x","arguments":{"big":12345678901234567890123,"f":1.10,"s":"\u00e9\n<b>"}},"id": 7 ,"method":"tools/call","jsonrpc":"2.0"}`,
			id:     `7`,
			params: `{"name":"x","arguments":{"big":12345678901234567890123,"f":1.10,"s":"\u00e9\n<b>"}}`,
		},
		{
			in:     "{\n  \"jsonrpc\": \"2.0\",\n  \"id\": \"a\\u0062c\",\n  \"result\": { \"z\": 1, \"a\": [ 1 , 2 ] }\n}",
			id:     `"a\u0062c"`,
			result: `{ "z": 1, "a": [ 1 , 2 ] }`,
		},
	}
	for _, tt := range tests {
		msg, rpcErr := Parse([]byte(tt.in))
		if rpcErr != nil {
			t.Fatalf("Parse(%s): %v", tt.in, rpcErr)
		}
		if string(msg.Raw) != tt.in {
			t.Errorf("Raw = %s, want %s", msg.Raw, tt.in)
		}
		if string(msg.ID) != tt.id || string(msg.Params) != tt.params || string(msg.Result) != tt.result {
			t.Errorf("Parse(%s): ID %s, Params %s, Result %s", tt.in, msg.ID, msg.Params, msg.Result)
		}
	}
}

func TestIDKey(t *testing.T) {
	tests := []struct {
		id, want string
	}{
		{`1`, "n:1"},
		{`1.0`, "n:1"},
		{`1e0`, "n:1"},
		{`10e-1`, "n:1"},
		{`0.1e1`, "n:1"},
		{` 1 `, "n:1"},
		{`-0`, "n:0"},
		{`0`, "n:0"},
		{`-12`, "n:-12"},
		{`1.5`, "n:15e-1"},
		{`1.50`, "n:15e-1"},
		{`15e-1`, "n:15e-1"},
		{`0.015`, "n:15e-3"},
		{`100`, "n:100"},
		{`1E2`, "n:100"},
		{`1e+2`, "n:100"},
		{`-1.25e1`, "n:-125e-1"},
		{`1e21`, "n:1e21"},
		{`1000000000000000000000`, "n:1e21"},
		{`123456789012345678901234567890`, "n:12345678901234567890123456789e1"},
		{`1e999999999999999999999`, "n:1e999999999999999999999"},
		{`"1"`, "s:1"},
		{`"\u0031"`, "s:1"},
		{`"a\"b"`, `s:a"b`},
		{`""`, "s:"},
		{``, ""},
		{`9007199254740993`, "n:9007199254740993"},
		{`9007199254740992`, "n:9007199254740992"},
	}
	for _, tt := range tests {
		if got := IDKey(json.RawMessage(tt.id)); got != tt.want {
			t.Errorf("IDKey(%s) = %q, want %q", tt.id, got, tt.want)
		}
	}
	if IDKey(json.RawMessage(`"1"`)) == IDKey(json.RawMessage(`1`)) {
		t.Error(`IDKey("1") == IDKey(1): a string id and a numeric id must differ`)
	}
	msg, _ := Parse([]byte(`{"jsonrpc":"2.0","id":1.0,"result":{}}`))
	if got := msg.IDKey(); got != "n:1" {
		t.Errorf("Message.IDKey() = %q, want n:1", got)
	}
}

func TestWithID(t *testing.T) {
	tests := []struct {
		in, id, want string
	}{
		{
			`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","id":1}}`, `"agenthelm-42"`,
			`{"jsonrpc":"2.0","id":"agenthelm-42","method":"tools/call","params":{"name":"x","id":1}}`,
		},
		{
			`{"id" :  "a" , "jsonrpc":"2.0","method":"m"}`, `17`,
			`{"id" :  17 , "jsonrpc":"2.0","method":"m"}`,
		},
		{
			"{\"jsonrpc\":\"2.0\",\n\"result\":{\"id\":3},\n\"id\":3}", `"x"`,
			"{\"jsonrpc\":\"2.0\",\n\"result\":{\"id\":3},\n\"id\":\"x\"}",
		},
		{
			`{"jsonrpc":"2.0","error":{"code":1,"message":"m"},"id":null}`, `5`,
			`{"jsonrpc":"2.0","error":{"code":1,"message":"m"},"id":5}`,
		},
	}
	for _, tt := range tests {
		m, rpcErr := Parse([]byte(tt.in))
		if rpcErr != nil {
			t.Fatalf("Parse(%s): %v", tt.in, rpcErr)
		}
		got, err := WithID(m, json.RawMessage(tt.id))
		if err != nil {
			t.Fatalf("WithID(%s, %s): %v", tt.in, tt.id, err)
		}
		if string(got.Raw) != tt.want {
			t.Errorf("WithID(%s, %s).Raw = %s, want %s", tt.in, tt.id, got.Raw, tt.want)
		}
		if string(got.ID) != tt.id || got.Kind != m.Kind || got.Method != m.Method ||
			!bytes.Equal(got.Params, m.Params) || !bytes.Equal(got.Result, m.Result) {
			t.Errorf("WithID(%s, %s) = %+v, want only the id changed from %+v", tt.in, tt.id, got, m)
		}
		if string(m.Raw) != tt.in {
			t.Errorf("WithID modified its argument: %s", m.Raw)
		}
	}
}

func TestWithIDErrors(t *testing.T) {
	note, _ := Parse([]byte(`{"jsonrpc":"2.0","method":"m"}`))
	if _, err := WithID(note, json.RawMessage(`1`)); err == nil {
		t.Error("WithID on a notification succeeded")
	}
	req, _ := Parse([]byte(`{"jsonrpc":"2.0","id":1,"method":"m"}`))
	for _, bad := range []string{`true`, `{}`, `null`, `1 2`, ``} {
		if got, err := WithID(req, json.RawMessage(bad)); err == nil {
			t.Errorf("WithID(req, %q) = %s, want an error", bad, got.Raw)
		}
	}
}

func TestMember(t *testing.T) {
	tests := []struct {
		obj, name, want string
	}{
		{`{"name":"x","arguments":{"a":1}}`, "arguments", `{"a":1}`},
		{`{"name":"x","arguments":{"a":1}}`, "name", `"x"`},
		{`{ "a" : [ 1 , 2 ] , "b":null }`, "a", `[ 1 , 2 ]`},
		{`{"a":1,"b":null}`, "b", `null`},
		{`{"a":{"b":1}}`, "b", ``},
		{`{"a":1}`, "c", ``},
		{`{"\u0061":1}`, "a", `1`},
		{`{}`, "a", ``},
		{`[1]`, "a", ``},
		{`"a"`, "a", ``},
		{`null`, "a", ``},
		{``, "a", ``},
		{`{"a":`, "a", ``},
		// Ambiguous: readers disagree about which value counts.
		{`{"name":"read","name":"delete"}`, "name", ``},
		{`{"name":"read","Name":"delete"}`, "name", ``},
		{`{"Name":"delete"}`, "name", ``},
	}
	for _, tt := range tests {
		got := Member(json.RawMessage(tt.obj), tt.name)
		if string(got) != tt.want || (tt.want == "" && got != nil) {
			t.Errorf("Member(%s, %q) = %q, want %q", tt.obj, tt.name, got, tt.want)
		}
	}
}

func TestSetMember(t *testing.T) {
	tests := []struct {
		obj, name, value, want string
	}{
		// An existing member's value is replaced where it stands.
		{`{"name":"x","_meta":{"a":1},"arguments":{}}`, "_meta", `{"b":2}`, `{"name":"x","_meta":{"b":2},"arguments":{}}`},
		{`{ "a" : 1 , "b" : 2 }`, "a", `"z"`, `{ "a" : "z" , "b" : 2 }`},
		{`{"a":{"a":1}}`, "a", `2`, `{"a":2}`},
		// A new member is appended.
		{`{"name":"x"}`, "_meta", `{"k":"v"}`, `{"name":"x","_meta":{"k":"v"}}`},
		{`{ "a" : 1 }`, "b", `2`, `{"a" : 1,"b":2}`},
		{`{"a":{"b":1}}`, "b", `2`, `{"a":{"b":1},"b":2}`},
		{`{"a":1}`, "io.agenthelm/saga", `"s1"`, `{"a":1,"io.agenthelm/saga":"s1"}`},
		{`{}`, "<k>", `1`, `{"<k>":1}`},
		// An empty object, nothing or null is {}.
		{`{}`, "a", `1`, `{"a":1}`},
		{`{ }`, "a", `1`, `{"a":1}`},
		{"{\n}", "a", `1`, `{"a":1}`},
		{``, "a", `1`, `{"a":1}`},
		{`null`, "a", `1`, `{"a":1}`},
		{" null ", "a", `1`, `{"a":1}`},
	}
	for _, tt := range tests {
		var obj json.RawMessage
		if tt.obj != "" {
			obj = json.RawMessage(tt.obj)
		}
		orig := string(obj)
		got, err := SetMember(obj, tt.name, json.RawMessage(tt.value))
		if err != nil {
			t.Errorf("SetMember(%s, %q, %s): %v", tt.obj, tt.name, tt.value, err)
			continue
		}
		if string(got) != tt.want {
			t.Errorf("SetMember(%s, %q, %s) = %s, want %s", tt.obj, tt.name, tt.value, got, tt.want)
		}
		if !json.Valid(got) {
			t.Errorf("SetMember(%s, %q, %s) = %s, not valid JSON", tt.obj, tt.name, tt.value, got)
		}
		if string(obj) != orig {
			t.Errorf("SetMember modified its argument: %s", obj)
		}
		if m := Member(got, tt.name); string(m) != tt.value {
			t.Errorf("Member(SetMember(%s, %q, %s)) = %s", tt.obj, tt.name, tt.value, m)
		}
	}
}

func TestSetMemberErrors(t *testing.T) {
	for _, obj := range []string{
		`[1]`, `"x"`, `5`, `true`,
		`{`, `{"a":1`, `{"a":}`, `{"a":1}}`, `{} x`,
		`{"_meta":{},"_meta":{}}`, `{"_meta":{},"_META":{}}`, `{"_Meta":{}}`,
	} {
		got, err := SetMember(json.RawMessage(obj), "_meta", json.RawMessage(`{}`))
		if err == nil {
			t.Errorf("SetMember(%s, _meta) = %s, want an error", obj, got)
		}
	}
}

func TestStringMember(t *testing.T) {
	for _, c := range []struct{ obj, want string }{
		{`{"s":"a\u00e9"}`, "aé"},
		{`{"s":1}`, ""},
		{`{"s":null}`, ""},
		{`{"t":"x"}`, ""},
		{`{"s":"x","S":"y"}`, ""}, // ambiguous
		{``, ""},
	} {
		if got := StringMember(json.RawMessage(c.obj), "s"); got != c.want {
			t.Errorf("StringMember(%s) = %q, want %q", c.obj, got, c.want)
		}
	}
}
