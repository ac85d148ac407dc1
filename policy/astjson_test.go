package policy

import (
	"encoding/json"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// slowMarshal is what the engine did before marshalDecision: convert to Go
// values and marshal those.
func slowMarshal(t testing.TB, v ast.Value) string {
	t.Helper()
	x, err := ast.JSON(v)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMarshalDecisionMatchesEncodingJSON(t *testing.T) {
	for _, src := range []string{
		`{"allow": true, "require_approval": false, "reasons": [], "approvers": [], "approval_timeout": "", "labels": {}}`,
		`{"allow": false, "reasons": ["a <b> & \"c\"", "tab\there", "line\nbreak", "\u2028\u2029", "é ü 日本"], "labels": {"rules": "x,y"}}`,
		`{"z": 1, "a": 2, "m": {"b": [1, 2.5, -3e10, 0.000001, 1e400]}, "s": {"b", "a", "c"}}`,
		`{"n": null, "t": true, "f": false, "nested": [[], {}, [{"k": "v"}]], "big": 123456789012345678901234567890}`,
		`{"\u0000key": "\u0001\u001f", "ctrl": "\b\f\r"}`,
		`["not", "an", "object"]`,
		`"just a string"`,
		`{1: "number key", "s": "x"}`,
		`{{"set"}: "in a key"}`,
	} {
		v := ast.MustParseTerm(src).Value
		got, err := marshalDecision(v)
		if err != nil {
			t.Fatalf("marshalDecision(%s): %v", src, err)
		}
		if want := slowMarshal(t, v); string(got) != want {
			t.Errorf("marshalDecision(%s)\n got %s\nwant %s", src, got, want)
		}
	}
}

func TestMarshalDecisionInvalidUTF8(t *testing.T) {
	v := ast.NewObject([2]*ast.Term{ast.StringTerm("r"), ast.StringTerm("bad \xff\xfe byte")})
	got, err := marshalDecision(v)
	if err != nil {
		t.Fatal(err)
	}
	if want := slowMarshal(t, v); string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func FuzzMarshalDecision(f *testing.F) {
	for _, s := range []string{`{"a":"<&>"}`, `[1,2.50,"x"]`, `{"k":{"b":true,"a":null}}`, `"\u2028"`, `1e-7`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseJSONValue([]byte(s))
		if err != nil {
			return
		}
		got, err := marshalDecision(v)
		if err != nil {
			return
		}
		if want := slowMarshal(t, v); string(got) != want {
			t.Fatalf("marshalDecision(%s) = %s, want %s", s, got, want)
		}
	})
}
