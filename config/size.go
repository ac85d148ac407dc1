package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// ByteSize is a number of bytes. In YAML it is written as an integer or as a
// number with a unit: "4MiB", "512KiB", "1.5GiB", "10MB". Binary units
// (KiB, MiB, GiB, TiB) are powers of 1024, decimal ones (KB, MB, GB, TB)
// powers of 1000; units are case-insensitive. A lone K, M, G or T is
// rejected as ambiguous.
type ByteSize int64

// Byte size units.
const (
	B   ByteSize = 1
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
	TiB ByteSize = 1 << 40
	KB  ByteSize = 1000
	MB  ByteSize = 1000 * KB
	GB  ByteSize = 1000 * MB
	TB  ByteSize = 1000 * GB
)

var sizeUnits = map[string]ByteSize{
	"": B, "b": B,
	"kib": KiB, "mib": MiB, "gib": GiB, "tib": TiB,
	"kb": KB, "mb": MB, "gb": GB, "tb": TB,
}

// ParseSize parses a size such as "4MiB", "512 KiB", "1.5GiB" or "4096".
// The result must be a whole, non-negative number of bytes that fits in an
// int64.
func ParseSize(s string) (ByteSize, error) {
	in := strings.TrimSpace(s)
	i := 0
	for i < len(in) && (in[i] >= '0' && in[i] <= '9' || in[i] == '.') {
		i++
	}
	num, unit := in[:i], strings.ToLower(strings.TrimSpace(in[i:]))
	if num == "" {
		if strings.HasPrefix(in, "-") {
			return 0, fmt.Errorf("invalid size %q: must not be negative", s)
		}
		return 0, fmt.Errorf("invalid size %q: want a number of bytes or a number with a unit, like 4MiB", s)
	}
	mult, ok := sizeUnits[unit]
	if !ok {
		switch unit {
		case "k", "m", "g", "t":
			return 0, fmt.Errorf("invalid size %q: unit %q is ambiguous; use %siB (powers of 1024) or %sB (powers of 1000)",
				s, in[i:], strings.ToUpper(unit), strings.ToUpper(unit))
		}
		return 0, fmt.Errorf("invalid size %q: unknown unit %q (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)", s, strings.TrimSpace(in[i:]))
	}
	whole, frac, hasFrac := strings.Cut(num, ".")
	if whole == "" || strings.Contains(frac, ".") || (hasFrac && frac == "") {
		return 0, fmt.Errorf("invalid size %q: malformed number %q", s, num)
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > math.MaxInt64/int64(mult) {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	total := w * int64(mult)
	if frac != "" {
		// frac*mult/10^len(frac), exactly, or an error.
		if len(frac) > 12 {
			return 0, fmt.Errorf("invalid size %q: too many decimal places", s)
		}
		f, _ := strconv.ParseInt(frac, 10, 64)
		den := int64(math.Pow10(len(frac)))
		if f != 0 && int64(mult) > math.MaxInt64/f {
			return 0, fmt.Errorf("invalid size %q: too large", s)
		}
		p := f * int64(mult)
		if p%den != 0 {
			return 0, fmt.Errorf("invalid size %q: not a whole number of bytes", s)
		}
		if total > math.MaxInt64-p/den {
			return 0, fmt.Errorf("invalid size %q: too large", s)
		}
		total += p / den
	}
	return ByteSize(total), nil
}

// String writes the size with the largest binary unit that divides it
// exactly ("4MiB", "1536KiB", "1000B"), in a form ParseSize reads back.
func (s ByteSize) String() string {
	if s < 0 {
		return strconv.FormatInt(int64(s), 10) + "B"
	}
	for _, u := range []struct {
		name string
		size ByteSize
	}{{"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}} {
		if s >= u.size && s%u.size == 0 {
			return strconv.FormatInt(int64(s/u.size), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}

// UnmarshalYAML reads an integer (bytes) or a string with a unit.
func (s *ByteSize) UnmarshalYAML(node ast.Node) error {
	node = unwrap(node)
	switch n := node.(type) {
	case *ast.IntegerNode:
		switch v := n.Value.(type) {
		case int64:
			if v < 0 {
				return nodeErrorf(node, "size must not be negative")
			}
			*s = ByteSize(v)
			return nil
		case uint64:
			if v > math.MaxInt64 {
				return nodeErrorf(node, "size is too large")
			}
			*s = ByteSize(v)
			return nil
		}
		return nodeErrorf(node, "invalid size %s", n.GetToken().Value)
	case *ast.StringNode, *ast.LiteralNode:
		str, _ := stringValue(node)
		v, err := ParseSize(str)
		if err != nil {
			return &nodeError{tok: node.GetToken(), err: err}
		}
		*s = v
		return nil
	}
	return nodeErrorf(node, "expected a size like 4MiB or a number of bytes, got %s", nodeKind(node))
}

// MarshalYAML writes the size as String does.
func (s ByteSize) MarshalYAML() (any, error) { return s.String(), nil }
