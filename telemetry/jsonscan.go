package telemetry

import (
	"encoding/json"
	"strings"
)

// A small scanner over JSON bytes, for the hot paths (redaction, reading
// _meta and isError) where encoding/json's decoder would allocate. Every
// function is bounds-safe on any input; on invalid JSON the results are
// meaningless but nothing panics.

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString returns the end of the string literal starting at b[i] == '"'.
func scanString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// scanScalar returns the end of a number, true, false or null.
func scanScalar(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// skipValue returns the end of the value starting at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return scanString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = scanString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	return scanScalar(b, i)
}

// objectMember returns the raw value of the top-level member name of the
// JSON object raw. found is false when raw is not an object or has no such
// member; ambiguous is true when the name appears twice or also in another
// case (readers disagree on such a value, see jsonrpc.Lookup).
func objectMember(raw []byte, name string) (val []byte, found, ambiguous bool) {
	i := skipWS(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return nil, false, false
	}
	i = skipWS(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		return nil, false, false
	}
	for i < len(raw) {
		if raw[i] != '"' {
			return nil, false, false
		}
		ke := scanString(raw, i)
		key := raw[i:ke]
		i = skipWS(raw, ke)
		if i >= len(raw) || raw[i] != ':' {
			return nil, false, false
		}
		vs := skipWS(raw, i+1)
		if vs >= len(raw) {
			return nil, false, false
		}
		ve := skipValue(raw, vs)
		if k := stringContent(key); strings.EqualFold(k, name) {
			if found || k != name {
				return nil, false, true
			}
			val, found = raw[vs:ve], true
		}
		i = skipWS(raw, ve)
		if i >= len(raw) || raw[i] != ',' {
			break
		}
		i = skipWS(raw, i+1)
	}
	return val, found, false
}

// jsonString decodes a JSON string value; ok is false for anything else.
func jsonString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	return stringContent(raw), true
}

// stringContent decodes a JSON string literal (with its quotes).
func stringContent(lit []byte) string {
	if len(lit) < 2 {
		return ""
	}
	inner := lit[1 : len(lit)-1]
	for _, c := range inner {
		if c == '\\' {
			var s string
			_ = json.Unmarshal(lit, &s)
			return s
		}
	}
	return string(inner)
}
