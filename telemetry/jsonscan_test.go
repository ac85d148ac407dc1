package telemetry

import (
	"encoding/json"
	"testing"

	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
	"github.com/agenthelm/agenthelm/toolcall"
)

func TestObjectMember(t *testing.T) {
	tests := []struct {
		raw, name, val   string
		found, ambiguous bool
	}{
		{`{"a":1,"_meta":{"x":[1,"}"]} }`, "_meta", `{"x":[1,"}"]}`, true, false},
		{` { "b" : "x\"y" , "a" : null } `, "a", `null`, true, false},
		{`{"a":1}`, "b", ``, false, false},
		{`{"a":1,"a":2}`, "a", ``, false, true},
		{`{"A":1,"a":2}`, "a", ``, false, true},
		{`{"A":1}`, "a", ``, false, true},
		{`{"\u0061":3}`, "a", `3`, true, false},
		{`{}`, "a", ``, false, false},
		{`[1]`, "a", ``, false, false},
		{`{"a"`, "a", ``, false, false},
		{`{"a":`, "a", ``, false, false},
		{``, "a", ``, false, false},
	}
	for _, tt := range tests {
		val, found, amb := objectMember([]byte(tt.raw), tt.name)
		if string(val) != tt.val || found != tt.found || amb != tt.ambiguous {
			t.Errorf("objectMember(%s, %q) = %s, %v, %v; want %s, %v, %v", tt.raw, tt.name, val, found, amb, tt.val, tt.found, tt.ambiguous)
		}
	}
}

// FuzzObjectMember checks the scanner against jsonrpc.Lookup, and
// isToolError against toolcall.Result.IsToolError, on valid JSON.
func FuzzObjectMember(f *testing.F) {
	for _, s := range []string{`{"isError":true}`, `{"content":[],"isError":false}`, `{"IsError":true}`,
		`{"a":{"isError":true}}`, `{"isError":true,"isError":false}`, `{"is\u0045rror":true}`, `[]`, `"x"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		raw := []byte(s)
		if !json.Valid(raw) {
			objectMember(raw, "isError") // must not panic
			return
		}
		res := toolcall.Result{Result: raw}
		if got, want := isToolError(res), res.IsToolError(); got != want {
			t.Errorf("isToolError(%s) = %v, IsToolError = %v", s, got, want)
		}
		val, found, amb := objectMember(raw, "isError")
		lv, err := jsonrpc.Lookup(raw, "isError")
		switch {
		case amb:
			if err == nil {
				t.Errorf("objectMember(%s) ambiguous, Lookup = %s", s, lv)
			}
		case err == nil && string(val) != string(lv):
			t.Errorf("objectMember(%s) = %s, %v; Lookup = %s", s, val, found, lv)
		}
	})
}
