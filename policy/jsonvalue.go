package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

// maxJSONDepth bounds nesting, as encoding/json does.
const maxJSONDepth = 10000

// parseJSONValue converts a JSON text straight to an AST value, without the
// map[string]any step of json.Unmarshal + ast.InterfaceToValue (about half
// the allocations; see BenchmarkInputConversion). It accepts exactly what
// encoding/json accepts and yields the same value: numbers keep their text
// (exact), a duplicate object key keeps its last value, invalid UTF-8 in
// strings becomes U+FFFD.
func parseJSONValue(data []byte) (ast.Value, error) {
	p := jsonParser{data: data}
	p.skipSpace()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.data) {
		return nil, p.errorf("invalid character %q after top-level value", p.data[p.pos])
	}
	return v, nil
}

type jsonParser struct {
	data []byte
	pos  int
}

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("offset %d: %s", p.pos, fmt.Sprintf(format, args...))
}

var errJSONEnd = errors.New("unexpected end of JSON input")

func (p *jsonParser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) (ast.Value, error) {
	if p.pos >= len(p.data) {
		return nil, errJSONEnd
	}
	if depth > maxJSONDepth {
		return nil, p.errorf("exceeded max depth")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return ast.String(s), nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return p.literal("true", ast.Boolean(true))
	case c == 'f':
		return p.literal("false", ast.Boolean(false))
	case c == 'n':
		return p.literal("null", ast.Null{})
	default:
		return nil, p.errorf("invalid character %q looking for beginning of value", c)
	}
}

func (p *jsonParser) literal(word string, v ast.Value) (ast.Value, error) {
	if len(p.data)-p.pos < len(word) || string(p.data[p.pos:p.pos+len(word)]) != word {
		return nil, p.errorf("invalid literal")
	}
	p.pos += len(word)
	return v, nil
}

func (p *jsonParser) object(depth int) (ast.Value, error) {
	p.pos++ // {
	// Most objects are small: their key-value list needs no allocation.
	var buf [8][2]*ast.Term
	kvs := buf[:0]
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return ast.NewObject(), nil
	}
	for {
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, errJSONEnd
		}
		if p.data[p.pos] != '"' {
			return nil, p.errorf("invalid character %q looking for beginning of object key string", p.data[p.pos])
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, errJSONEnd
		}
		if p.data[p.pos] != ':' {
			return nil, p.errorf("invalid character %q after object key", p.data[p.pos])
		}
		p.pos++
		p.skipSpace()
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		kvs = append(kvs, [2]*ast.Term{ast.StringTerm(k), ast.NewTerm(v)})
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, errJSONEnd
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			if hasDuplicate(kvs) {
				return newObjectLastWins(kvs), nil
			}
			return ast.NewObject(kvs...), nil
		default:
			return nil, p.errorf("invalid character %q after object key:value pair", p.data[p.pos])
		}
	}
}

// hasDuplicate reports whether two of the (string) keys of kvs are equal.
func hasDuplicate(kvs [][2]*ast.Term) bool {
	key := func(i int) ast.String { return kvs[i][0].Value.(ast.String) }
	if len(kvs) <= 16 {
		for i := range kvs {
			for j := i + 1; j < len(kvs); j++ {
				if key(i) == key(j) {
					return true
				}
			}
		}
		return false
	}
	seen := make(map[ast.String]struct{}, len(kvs))
	for i := range kvs {
		if _, ok := seen[key(i)]; ok {
			return true
		}
		seen[key(i)] = struct{}{}
	}
	return false
}

// newObjectLastWins builds an object in which a repeated key keeps its last
// value, as encoding/json decodes it.
func newObjectLastWins(kvs [][2]*ast.Term) ast.Value {
	obj := ast.NewObjectWithCapacity(len(kvs))
	for _, kv := range kvs {
		obj.Insert(kv[0], kv[1])
	}
	return obj
}

func (p *jsonParser) array(depth int) (ast.Value, error) {
	p.pos++ // [
	var elems []*ast.Term
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return ast.NewArray(), nil
	}
	for {
		p.skipSpace()
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		elems = append(elems, ast.NewTerm(v))
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, errJSONEnd
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return ast.NewArray(elems...), nil
		default:
			return nil, p.errorf("invalid character %q after array element", p.data[p.pos])
		}
	}
}

// str reads a string at p.pos (which holds the opening quote).
func (p *jsonParser) str() (string, error) {
	start := p.pos
	p.pos++
	simple := true
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			raw := p.data[start+1 : p.pos-1]
			if simple && utf8.Valid(raw) {
				return string(raw), nil
			}
			// Escapes or invalid UTF-8: let encoding/json decide.
			var s string
			if err := json.Unmarshal(p.data[start:p.pos], &s); err != nil {
				return "", fmt.Errorf("offset %d: %w", start, err)
			}
			return s, nil
		case c == '\\':
			simple = false
			p.pos += 2
		case c < 0x20:
			return "", p.errorf("invalid character %q in string literal", c)
		default:
			p.pos++
		}
	}
	return "", errJSONEnd
}

// number reads a number with JSON's grammar and keeps its text.
func (p *jsonParser) number() (ast.Value, error) {
	start := p.pos
	d := p.data
	if d[p.pos] == '-' {
		p.pos++
	}
	digits := func() int {
		n := 0
		for p.pos < len(d) && d[p.pos] >= '0' && d[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	switch {
	case p.pos < len(d) && d[p.pos] == '0':
		p.pos++
	case digits() == 0:
		return nil, p.errorf("invalid number")
	}
	if p.pos < len(d) && d[p.pos] == '.' {
		p.pos++
		if digits() == 0 {
			return nil, p.errorf("invalid number")
		}
	}
	if p.pos < len(d) && (d[p.pos] == 'e' || d[p.pos] == 'E') {
		p.pos++
		if p.pos < len(d) && (d[p.pos] == '+' || d[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return nil, p.errorf("invalid number")
		}
	}
	return ast.Number(d[start:p.pos]), nil
}
