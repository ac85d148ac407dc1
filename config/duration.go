package config

import (
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// Duration is a time.Duration written in Go syntax in YAML: "90s", "5m",
// "1h30m", "500ms". A bare number is rejected (it has no unit), except 0.
type Duration time.Duration

// String writes d in Go syntax without trailing zero units: "1h", "1m30s",
// "500ms".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(node ast.Node) error {
	node = unwrap(node)
	switch n := node.(type) {
	case *ast.StringNode, *ast.LiteralNode:
		s, _ := stringValue(n)
		v, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return nodeErrorf(node, "invalid duration %q: use Go syntax such as 90s, 5m or 1h30m", s)
		}
		*d = Duration(v)
		return nil
	case *ast.IntegerNode:
		if n.GetToken().Value == "0" {
			*d = 0
			return nil
		}
		return nodeErrorf(node, "duration %s has no unit: write %ss, %sm or %sh",
			n.GetToken().Value, n.GetToken().Value, n.GetToken().Value, n.GetToken().Value)
	}
	return nodeErrorf(node, "expected a duration such as 90s or 5m, got %s", nodeKind(node))
}

// MarshalYAML writes the duration as String does.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }
