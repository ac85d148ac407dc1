package policy

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The decision comes back from OPA as an AST value. Converting it to Go
// maps (ast.JSON) and marshaling those with encoding/json (reflection, map
// keys sorted on every call) is most of what a decision costs after the
// evaluation, so the engine encodes the AST value itself. The bytes are
// exactly those of json.Marshal(ast.JSON(v)); a value this encoder does
// not handle (an object key that is not a string, a lazily converted
// object) takes that slow path.

// objectType is the type of the objects ast.NewObject makes.
var objectType = reflect.TypeOf(ast.NewObject())

// marshalDecision returns the JSON encoding of v, as json.Marshal encodes
// ast.JSON(v).
func marshalDecision(v ast.Value) ([]byte, error) {
	if b, ok := appendJSON(make([]byte, 0, 256), v); ok {
		return b, nil
	}
	x, err := ast.JSON(v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(x)
}

// appendJSON appends the encoding of v; ok is false if v holds something it
// does not handle.
func appendJSON(b []byte, v ast.Value) (_ []byte, ok bool) {
	switch v := v.(type) {
	case ast.Null:
		return append(b, "null"...), true
	case ast.Boolean:
		if v {
			return append(b, "true"...), true
		}
		return append(b, "false"...), true
	case ast.Number:
		if !validNumber(string(v)) {
			return b, false
		}
		return append(b, v...), true
	case ast.String:
		return appendString(b, string(v)), true
	case *ast.Array:
		b = append(b, '[')
		for i := range v.Len() {
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok = appendJSON(b, v.Elem(i).Value); !ok {
				return b, false
			}
		}
		return append(b, ']'), true
	case ast.Set:
		b = append(b, '[')
		for i, x := range v.Slice() { // in Foreach's order, without a closure to allocate
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok = appendJSON(b, x.Value); !ok {
				return b, false
			}
		}
		return append(b, ']'), true
	case ast.Object:
		if reflect.TypeOf(v) != objectType { // a lazily converted object: ast.JSON keeps its Go values
			return b, false
		}
		// Objects iterate in key order, which for string keys is the byte
		// order encoding/json sorts map keys in.
		b = append(b, '{')
		for i, k := range v.Keys() {
			name, isString := k.Value.(ast.String)
			if !isString {
				return b, false
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, string(name))
			b = append(b, ':')
			if b, ok = appendJSON(b, v.Get(k).Value); !ok {
				return b, false
			}
		}
		return append(b, '}'), true
	default:
		return b, false
	}
}

// validNumber reports whether s is a JSON number (encoding/json's check for
// json.Number).
func validNumber(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == '-' {
		s = s[1:]
		if s == "" {
			return false
		}
	}
	switch {
	case s[0] == '0':
		s = s[1:]
	case '1' <= s[0] && s[0] <= '9':
		s = s[1:]
		for len(s) > 0 && '0' <= s[0] && s[0] <= '9' {
			s = s[1:]
		}
	default:
		return false
	}
	if len(s) >= 2 && s[0] == '.' && '0' <= s[1] && s[1] <= '9' {
		s = s[2:]
		for len(s) > 0 && '0' <= s[0] && s[0] <= '9' {
			s = s[1:]
		}
	}
	if len(s) >= 2 && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		if s[0] == '+' || s[0] == '-' {
			s = s[1:]
			if s == "" {
				return false
			}
		}
		for len(s) > 0 && '0' <= s[0] && s[0] <= '9' {
			s = s[1:]
		}
	}
	return s == ""
}

const hexDigits = "0123456789abcdef"

// appendString appends s quoted as encoding/json quotes strings (with its
// default HTML escaping, invalid UTF-8 replaced, U+2028 and U+2029
// escaped).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// astType names the JSON type of an AST value, as jsonType names that of
// the value ast.JSON converts it to.
func astType(v ast.Value) string {
	switch v.(type) {
	case ast.Null:
		return "null"
	case ast.Boolean:
		return "boolean"
	case ast.Number:
		return "number"
	case ast.String:
		return "string"
	case *ast.Array, ast.Set:
		return "array"
	case ast.Object:
		return "object"
	default:
		return ast.ValueName(v)
	}
}

// keyString is an object key as ast.JSON makes it a Go map key: a string
// as is, anything else as its JSON text.
func keyString(k *ast.Term) string {
	if s, ok := k.Value.(ast.String); ok {
		return string(s)
	}
	x, err := ast.JSON(k.Value)
	if err != nil {
		return k.String()
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(x); err != nil {
		return k.String()
	}
	return strings.TrimSpace(buf.String())
}
