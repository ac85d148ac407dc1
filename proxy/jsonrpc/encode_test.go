package jsonrpc

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestMarshal(t *testing.T) {
	got, err := Marshal(map[string]any{"s": "<b>&'x'</b>", "n": 1})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"n":1,"s":"<b>&'x'</b>"}`; string(got) != want {
		t.Errorf("Marshal = %s, want %s (no HTML escaping, no newline)", got, want)
	}
	if _, err := Marshal(func() {}); err == nil {
		t.Error("Marshal(func) succeeded")
	}
}

func TestNewFrames(t *testing.T) {
	tests := []struct {
		name string
		msg  *Message
		raw  string
		kind Kind
	}{
		{"request", NewRequest(json.RawMessage(`7`), "tools/call", json.RawMessage(`{"name":"<x>"}`)),
			`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"<x>"}}`, KindRequest},
		{"request without params", NewRequest(json.RawMessage(`"a"`), "ping", nil),
			`{"jsonrpc":"2.0","id":"a","method":"ping"}`, KindRequest},
		{"notification", NewNotification("notifications/progress", json.RawMessage(`{"progressToken":1,"progress":2}`)),
			`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":2}}`, KindNotification},
		{"notification without params", NewNotification("notifications/initialized", nil),
			`{"jsonrpc":"2.0","method":"notifications/initialized"}`, KindNotification},
		{"response", NewResponse(json.RawMessage(`1`), json.RawMessage(`{"content":[]}`)),
			`{"jsonrpc":"2.0","id":1,"result":{"content":[]}}`, KindResponse},
		{"response nil result", NewResponse(json.RawMessage(`1`), nil),
			`{"jsonrpc":"2.0","id":1,"result":{}}`, KindResponse},
		{"response empty result", NewResponse(json.RawMessage(`1`), json.RawMessage{}),
			`{"jsonrpc":"2.0","id":1,"result":{}}`, KindResponse},
		{"response null result", NewResponse(json.RawMessage(`1`), json.RawMessage(`null`)),
			`{"jsonrpc":"2.0","id":1,"result":null}`, KindResponse},
		{"error response", NewErrorResponse(json.RawMessage(`"q"`), &Error{Code: CodeMethodNotFound, Message: "no <such> method", Data: json.RawMessage(`{"m":"x"}`)}),
			`{"jsonrpc":"2.0","id":"q","error":{"code":-32601,"message":"no <such> method","data":{"m":"x"}}}`, KindErrorResponse},
		{"error response nil id", NewErrorResponse(nil, Errorf(CodeParseError, "parse error: %s", "x")),
			`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error: x"}}`, KindErrorResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if string(tt.msg.Raw) != tt.raw {
				t.Errorf("Raw = %s, want %s", tt.msg.Raw, tt.raw)
			}
			if tt.msg.Kind != tt.kind {
				t.Errorf("Kind = %v, want %v", tt.msg.Kind, tt.kind)
			}
			parsed, rpcErr := Parse(tt.msg.Raw)
			if rpcErr != nil {
				t.Fatalf("Parse(%s): %v", tt.msg.Raw, rpcErr)
			}
			if parsed.Kind != tt.msg.Kind || parsed.Method != tt.msg.Method || parsed.IDKey() != tt.msg.IDKey() {
				t.Errorf("Parse(%s) = %+v, want %+v", tt.msg.Raw, parsed, tt.msg)
			}
		})
	}
}

func TestNewFramePanicsOnInvalidRawJSON(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewRequest with invalid params did not panic")
		}
	}()
	NewRequest(json.RawMessage(`1`), "m", json.RawMessage(`{oops`))
}

func TestError(t *testing.T) {
	e := Errorf(CodeInvalidParams, "bad %s", "args")
	if e.Code != CodeInvalidParams || e.Message != "bad args" {
		t.Errorf("Errorf = %+v", e)
	}
	if got, want := e.Error(), "json-rpc error -32602: bad args"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	var err error = e
	var target *Error
	if !errors.As(err, &target) || target != e {
		t.Error("errors.As does not find the *Error")
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{
		KindRequest: "request", KindNotification: "notification", KindResponse: "response",
		KindErrorResponse: "error response", 0: "unknown", 99: "unknown",
	} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, want)
		}
	}
}

func TestDeleteMembers(t *testing.T) {
	for _, tc := range []struct {
		in    string
		names []string
		want  string
		err   bool
	}{
		{`{"name":"x","requestState":"s","inputResponses":{"a":{"action":"accept"}},"arguments":{"n": 1.50}}`, []string{"requestState", "inputResponses"}, `{"name":"x","arguments":{"n": 1.50}}`, false},
		{`{"name":"x"}`, []string{"requestState"}, `{"name":"x"}`, false},
		{` {} `, []string{"a"}, `{}`, false},
		{`{"requestState":"a","RequestState":"b"}`, []string{"requestState"}, "", true},
		{`[1]`, []string{"a"}, "", true},
	} {
		got, err := DeleteMembers(json.RawMessage(tc.in), tc.names...)
		if (err != nil) != tc.err {
			t.Errorf("DeleteMembers(%s): err = %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if !tc.err && string(got) != tc.want {
			t.Errorf("DeleteMembers(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
