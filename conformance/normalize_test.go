package conformance

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"
)

// What normalize changes, and why each difference is legitimate:
//
//  1. JSON formatting: whitespace and object key order carry no meaning in
//     JSON, so values are compared re-encoded with sorted keys. Numbers are
//     kept as written (json.Number), so a proxy that rounds 0.1+0.2 or turns
//     9007199254740993 into a float is still caught.
//  2. UUIDs become <uuid>. server-everything prints the transport's session
//     id in some texts ("for session 7c9e..."); through the proxy the
//     upstream session is the proxy's, not the one a direct client gets.
//  3. Clock times (Node's toLocaleTimeString, "7:48:12 AM") become <time>:
//     server-everything stamps dynamic resources with the time they were
//     made. Inside a base64 "blob" the decoded text is normalised the same
//     way and shown as <base64:...>.
//  4. _meta members named io.agenthelm/... are removed (and a _meta left
//     empty by that): the proxy owns that prefix and may annotate results.
//     Every other _meta member must pass through unchanged.
//  5. In a result that carries _meta["io.agenthelm/rollback"] (a failed step
//     unwound the saga, which the proxy reports to the agent by design), the
//     text content items the proxy appended ("agenthelm rolled back saga
//     ...") are removed. Everything the upstream returned must remain.
//
// JSON-RPC ids, Mcp-Session-Id headers and timing are never part of an
// observation in the first place.

var (
	uuidRE = regexp.MustCompile(`(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`)
	timeRE = regexp.MustCompile(`\b\d{1,2}:\d{2}:\d{2}(?:[ \x{202F}\x{00A0}]?[AP]M)?`)
)

const agenthelmMetaPrefix = "io.agenthelm/"

func normalizeString(s string) string {
	s = uuidRE.ReplaceAllString(s, "<uuid>")
	return timeRE.ReplaceAllString(s, "<time>")
}

// stripRollbackReport removes the proxy's rollback report from a result.
func stripRollbackReport(x map[string]any) map[string]any {
	meta, _ := x["_meta"].(map[string]any)
	content, ok := x["content"].([]any)
	if _, rolled := meta[agenthelmMetaPrefix+"rollback"]; !rolled || !ok {
		return x
	}
	kept := make([]any, 0, len(content))
	for _, c := range content {
		if m, ok := c.(map[string]any); ok && m["type"] == "text" {
			if t, _ := m["text"].(string); strings.HasPrefix(t, "agenthelm ") {
				continue
			}
		}
		kept = append(kept, c)
	}
	out := make(map[string]any, len(x))
	for k, v := range x {
		out[k] = v
	}
	out["content"] = kept
	return out
}

func normalizeValue(v any, key string) any {
	switch x := v.(type) {
	case map[string]any:
		x = stripRollbackReport(x)
		out := make(map[string]any, len(x))
		for k, val := range x {
			if k == "_meta" {
				if m, ok := val.(map[string]any); ok {
					kept := map[string]any{}
					dropped := false
					for mk, mv := range m {
						if strings.HasPrefix(mk, agenthelmMetaPrefix) {
							dropped = true
							continue
						}
						kept[mk] = normalizeValue(mv, mk)
					}
					if dropped && len(kept) == 0 {
						continue
					}
					out[k] = kept
					continue
				}
			}
			out[k] = normalizeValue(val, k)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, val := range x {
			out[i] = normalizeValue(val, key)
		}
		return out
	case string:
		if key == "blob" {
			if b, err := base64.StdEncoding.DecodeString(x); err == nil && utf8.Valid(b) {
				return "<base64:" + normalizeString(string(b)) + ">"
			}
		}
		return normalizeString(x)
	}
	return v
}

// decodeJSON decodes raw keeping numbers exact.
func decodeJSON(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data after JSON value")
	}
	return v, nil
}

// canonical renders v as indented JSON with sorted keys and no HTML escaping.
func canonical(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Sprintf("<unencodable: %v>", err)
	}
	return strings.TrimRight(buf.String(), "\n")
}

// normalize returns the canonical, normalised form of a raw JSON value.
func normalize(raw []byte) string {
	v, err := decodeJSON(raw)
	if err != nil {
		return fmt.Sprintf("<not JSON: %q>", raw)
	}
	return canonical(normalizeValue(v, ""))
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"b":1,"a":[2.50,9007199254740993]}`, `{"a":[2.50,9007199254740993],"b":1}`},
		{`{"text":"for session 7c9e6679-7425-40de-944b-e07fc1f90ae7 ok"}`, `{"text":"for session <uuid> ok"}`},
		{`{"text":"created at 7:48:12 AM"}`, `{"text":"created at <time>"}`},
		{`{"text":"created at 19:48:12"}`, `{"text":"created at <time>"}`},
		{"{\"text\":\"created at 7:48:12\u202fPM\"}", `{"text":"created at <time>"}`},
		{`{"blob":"` + base64.StdEncoding.EncodeToString([]byte("made at 1:02:03 PM")) + `"}`, `{"blob":"<base64:made at <time>>"}`},
		{`{"_meta":{"io.agenthelm/saga":"x"},"a":1}`, `{"a":1}`},
		{`{"_meta":{"io.agenthelm/saga":"x","k":"v"}}`, `{"_meta":{"k":"v"}}`},
		{`{"_meta":{}}`, `{"_meta":{}}`},
		{`{"s":"<b>&"}`, `{"s":"<b>&"}`},
		{`{"content":[{"type":"text","text":"bad"},{"type":"text","text":"agenthelm rolled back saga s-1"}],"isError":true,"_meta":{"io.agenthelm/rollback":{}}}`,
			`{"content":[{"type":"text","text":"bad"}],"isError":true}`},
		{`{"content":[{"type":"text","text":"agenthelm rolled back saga s-1"}]}`,
			`{"content":[{"type":"text","text":"agenthelm rolled back saga s-1"}]}`},
	}
	for _, tt := range tests {
		want := normalize([]byte(tt.want))
		if got := normalize([]byte(tt.in)); got != want {
			t.Errorf("normalize(%s) = %s, want %s", tt.in, got, want)
		}
	}
	if normalize([]byte(`{"n":1.0}`)) == normalize([]byte(`{"n":1}`)) {
		t.Errorf("normalize must keep 1.0 and 1 apart (a proxy must not rewrite numbers)")
	}
}
