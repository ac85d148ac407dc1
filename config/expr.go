package config

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/itchyny/gojq"
)

// Expr is a jq expression from the config. Validate compiles it and keeps
// the program, so that the packages running it never parse it again.
//
// Programs run without access to agenthelm's environment ($ENV and env are
// empty), so an expression cannot copy a secret into the journal.
type Expr struct {
	// Source is the expression as written.
	Source string

	code *gojq.Code
}

// CompileExpr compiles src into an Expr, for configs built in code.
func CompileExpr(src string) (Expr, error) {
	code, err := compileJQ(src)
	if err != nil {
		return Expr{}, err
	}
	return Expr{Source: src, code: code}, nil
}

// IsZero reports whether no expression was given.
func (e Expr) IsZero() bool { return strings.TrimSpace(e.Source) == "" }

// String returns the expression's source.
func (e Expr) String() string { return e.Source }

// Code returns the compiled program, or nil if the expression is empty or
// was not compiled (by Validate or CompileExpr).
func (e Expr) Code() *gojq.Code { return e.code }

// Eval runs the program on input (a value made of map[string]any, []any,
// string, float64, int, bool and nil, as gojq expects) and returns its one
// output. An expression that yields no value, more than one, or an error
// is an error.
func (e Expr) Eval(ctx context.Context, input any) (any, error) {
	if e.code == nil {
		return nil, fmt.Errorf("jq expression %q is not compiled", e.Source)
	}
	iter := e.code.RunWithContext(ctx, input)
	v, ok := iter.Next()
	if !ok {
		return nil, fmt.Errorf("jq expression %q produced no value", e.Source)
	}
	if err, isErr := v.(error); isErr {
		return nil, fmt.Errorf("jq expression %q: %w", e.Source, err)
	}
	if _, more := iter.Next(); more {
		return nil, fmt.Errorf("jq expression %q produced more than one value", e.Source)
	}
	return v, nil
}

// UnmarshalYAML reads the expression from a YAML string. A YAML mapping or
// list in its place is the usual mistake of an unquoted jq object.
func (e *Expr) UnmarshalYAML(node ast.Node) error {
	node = unwrap(node)
	switch node.(type) {
	case *ast.StringNode, *ast.LiteralNode:
		s, _ := stringValue(node)
		*e = Expr{Source: s}
		return nil
	case *ast.NullNode:
		*e = Expr{}
		return nil
	case *ast.MappingNode, *ast.MappingValueNode, *ast.SequenceNode:
		return nodeErrorf(node, "a jq expression must be a YAML string: quote it, e.g. '{id: .args.id}'")
	}
	return nodeErrorf(node, "a jq expression must be a YAML string, got %s: quote it", nodeKind(node))
}

// MarshalYAML writes the expression's source.
func (e Expr) MarshalYAML() (any, error) { return e.Source, nil }

// compileJQ parses and compiles a jq expression. Errors read
// "jq parse error: ..." or "jq compile error: ...".
func compileJQ(src string) (*gojq.Code, error) {
	q, err := gojq.Parse(src)
	if err != nil {
		var pe *gojq.ParseError
		if errors.As(err, &pe) {
			line, col := lineCol(src, pe.Offset-len(pe.Token))
			return nil, fmt.Errorf("jq parse error: %v (at %d:%d of the expression)", pe, line, col)
		}
		return nil, fmt.Errorf("jq parse error: %v", err)
	}
	code, err := gojq.Compile(q)
	if err != nil {
		return nil, fmt.Errorf("jq compile error: %v", err)
	}
	return code, nil
}

// lineCol converts a byte offset in s to a 1-based line and column (in
// runes). gojq reports the offset just after the offending token.
func lineCol(s string, off int) (line, col int) {
	off = min(max(off, 0), len(s))
	line, col = 1, 1
	for _, r := range s[:off] {
		if r == '\n' {
			line++
			col = 1
			continue
		}
		col++
	}
	return line, col
}
