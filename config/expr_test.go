package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCompileExpr(t *testing.T) {
	tests := []struct {
		src, err string
	}{
		{src: ".args"},
		{src: "{entityNames: [.args.entities[].name]}"},
		{src: `"/v1/refunds/" + .response.body.id`},
		{src: "{a: [.b}", err: `jq parse error: unexpected token "}" (at 1:8 of the expression)`},
		{src: "{\n  a: .b,\n  c: ]\n}", err: `jq parse error: unexpected token "]" (at 3:6 of the expression)`},
		{src: ".a |", err: "jq parse error: unexpected EOF (at 1:5 of the expression)"},
		{src: `"abc`, err: "jq parse error: unterminated string literal (at 1:5 of the expression)"},
		{src: "nosuch(1)", err: "jq compile error: function not defined: nosuch/1"},
		{src: "$x", err: "jq compile error: variable not defined: $x"},
		{src: `import "m" as m; .`, err: "jq compile error: cannot load module: \"m\""},
	}
	for _, tt := range tests {
		e, err := CompileExpr(tt.src)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("CompileExpr(%q) = %v, want error %q", tt.src, err, tt.err)
			}
			continue
		}
		if err != nil || e.Code() == nil || e.Source != tt.src {
			t.Errorf("CompileExpr(%q) = %+v, %v", tt.src, e, err)
		}
	}
}

func TestExprEval(t *testing.T) {
	input := map[string]any{"args": map[string]any{"ids": []any{1, 2}, "path": "/a"}}
	tests := []struct {
		src  string
		want any
		err  string
	}{
		{src: "{path: .args.path}", want: map[string]any{"path": "/a"}},
		{src: ".args.ids | length", want: 2},
		{src: ".missing", want: nil},
		{src: "$ENV", want: map[string]any{}},
		{src: "env.PATH", want: nil},
		{src: "empty", err: `jq expression "empty" produced no value`},
		{src: ".args.ids[]", err: `jq expression ".args.ids[]" produced more than one value`},
		{src: `error("boom")`, err: `jq expression "error(\"boom\")": error: boom`},
	}
	for _, tt := range tests {
		e, err := CompileExpr(tt.src)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.Eval(t.Context(), input)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("Eval(%q) = %v, %v; want error %q", tt.src, got, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Eval(%q): %v", tt.src, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Eval(%q) (-want +got):\n%s", tt.src, diff)
		}
	}
}

func TestExprEvalNotCompiled(t *testing.T) {
	_, err := Expr{Source: ".a"}.Eval(t.Context(), nil)
	if err == nil || !strings.Contains(err.Error(), "not compiled") {
		t.Errorf("Eval on an uncompiled Expr = %v, want a not compiled error", err)
	}
}

func TestExprYAML(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{in: `'{a: .b}'`, want: "{a: .b}"},
		{in: `.args`, want: ".args"},
		{in: `"\"/v1\""`, want: `"/v1"`},
		{in: "|\n            {a: .b}\n", want: "{a: .b}\n"},
		{in: "null", want: ""},
		{in: "{a: .b}", err: "agenthelm.yaml:1:71: upstreams.m.tools.t.compensate.args: a jq expression must be a YAML string: quote it, e.g. '{id: .args.id}'"},
		{in: "[.a]", err: "agenthelm.yaml:1:71: upstreams.m.tools.t.compensate.args: a jq expression must be a YAML string: quote it, e.g. '{id: .args.id}'"},
		{in: "5", err: "agenthelm.yaml:1:71: upstreams.m.tools.t.compensate.args: a jq expression must be a YAML string, got an integer: quote it"},
	}
	for _, tt := range tests {
		doc := "upstreams: {m: {command: [x], tools: {t: {compensate: {tool: u, args: " + tt.in + "}}}}}\n"
		if strings.HasPrefix(tt.in, "|") {
			doc = "upstreams:\n  m:\n    command: [x]\n    tools:\n      t:\n        compensate:\n          tool: u\n          args: " + tt.in
		}
		c, err := parse([]byte(doc), "agenthelm.yaml", noEnv)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("Parse(%q) = %v\nwant %s", doc, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", doc, err)
			continue
		}
		if got := c.Upstreams["m"].Tools["t"].Compensate.Args.Source; got != tt.want {
			t.Errorf("Parse(%q): args = %q, want %q", doc, got, tt.want)
		}
	}
}
