package upstream

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
)

// headerParamPrefix starts the headers a 2026-07-28 tools/call mirrors
// from its arguments (SEP-2243: "custom headers from tool parameters").
const headerParamPrefix = "Mcp-Param-"

// maxToolHeaders bounds the tools one ToolHeaders remembers; past it the
// memory is dropped and learned again from the next tools/list.
const maxToolHeaders = 4096

// ToolHeaders remembers, for the tools of one upstream, which arguments a
// 2026-07-28 tools/call mirrors into Mcp-Param-* headers: the input schema
// properties annotated with x-mcp-header. It learns them from the
// tools/list answers that pass through any connection to the upstream (the
// agents' and agenthelm's own), so one is shared by all of them.
//
// With it, the headers of a forwarded call are computed from the call's
// arguments, which the policy judged and the journal recorded, rather than
// relayed from the agent: a stdio agent (behind wrap) has no headers to
// relay, and an agent's headers that disagree with its arguments would
// make a conforming server refuse the call, or mislead an intermediary
// that routes on them. Safe for concurrent use.
type ToolHeaders struct {
	mu     sync.RWMutex
	tools  map[string][]paramBinding // tool name -> bindings (nil: none, or invalid)
	warned map[string]bool           // tools whose invalid annotations were reported
}

// paramBinding ties an argument (by its path of property names) to the
// header that carries it.
type paramBinding struct {
	path   []string
	header string // "Mcp-Param-" + the annotation, canonicalized
}

// NewToolHeaders returns an empty ToolHeaders.
func NewToolHeaders() *ToolHeaders {
	return &ToolHeaders{tools: map[string][]paramBinding{}}
}

// Learn records the bindings of every tool in a tools/list result (one
// page). A tool whose annotations break the specification's rules gets
// none: a conforming server does not enforce such annotations either. It
// returns why, for each such tool not reported before.
func (t *ToolHeaders) Learn(result json.RawMessage) (invalid map[string]error) {
	var page struct {
		Tools []struct {
			Name        string          `json:"name"`
			InputSchema json.RawMessage `json:"inputSchema"`
		} `json:"tools"`
	}
	if json.Unmarshal(result, &page) != nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, tool := range page.Tools {
		if tool.Name == "" {
			continue
		}
		if len(t.tools) >= maxToolHeaders {
			t.tools = map[string][]paramBinding{}
		}
		b, err := paramBindings(tool.InputSchema)
		if err != nil {
			b = nil
			if !t.warned[tool.Name] && len(t.warned) < maxToolHeaders {
				if t.warned == nil {
					t.warned = map[string]bool{}
				}
				t.warned[tool.Name] = true
				if invalid == nil {
					invalid = map[string]error{}
				}
				invalid[tool.Name] = err
			}
		}
		t.tools[tool.Name] = b
	}
	return invalid
}

// apply sets the Mcp-Param-* headers of a tools/call from its params when
// the tool is known, replacing any the agent sent; it leaves h alone for a
// tool no tools/list has shown yet (the agent's headers, if any, are then
// the best there is).
func (t *ToolHeaders) apply(h http.Header, params json.RawMessage) {
	name := jsonrpc.StringMember(params, "name")
	t.mu.RLock()
	bindings, known := t.tools[name]
	t.mu.RUnlock()
	if !known {
		return
	}
	for k := range h {
		if len(k) >= len(headerParamPrefix) && strings.EqualFold(k[:len(headerParamPrefix)], headerParamPrefix) {
			delete(h, k)
		}
	}
	args := jsonrpc.Member(params, "arguments")
	for _, b := range bindings {
		if v, ok := headerValue(args, b.path); ok {
			h.Set(b.header, v)
		}
	}
}

// paramBindings reads the x-mcp-header annotations of an input schema:
// properties reached through "properties" alone, of type string, integer or
// boolean, named by an HTTP token, each name used once (case-insensitively).
func paramBindings(schema json.RawMessage) ([]paramBinding, error) {
	var out []paramBinding
	seen := map[string]bool{}
	var walk func(props map[string]json.RawMessage, prefix []string) error
	walk = func(props map[string]json.RawMessage, prefix []string) error {
		for name, raw := range props {
			var p struct {
				Type       json.RawMessage            `json:"type"`
				Header     json.RawMessage            `json:"x-mcp-header"`
				Properties map[string]json.RawMessage `json:"properties"`
			}
			if json.Unmarshal(raw, &p) != nil {
				continue
			}
			path := append(append([]string(nil), prefix...), name)
			if p.Header != nil {
				var header, typ string
				if json.Unmarshal(p.Header, &header) != nil || !isToken(header) {
					return fmt.Errorf("property %s: x-mcp-header %s is not an HTTP token", strings.Join(path, "."), p.Header)
				}
				if json.Unmarshal(p.Type, &typ) != nil || (typ != "string" && typ != "integer" && typ != "boolean") {
					return fmt.Errorf("property %s: x-mcp-header on a property of type %s, not string, integer or boolean", strings.Join(path, "."), p.Type)
				}
				if seen[strings.ToLower(header)] {
					return fmt.Errorf("property %s: x-mcp-header %q is used twice", strings.Join(path, "."), header)
				}
				seen[strings.ToLower(header)] = true
				out = append(out, paramBinding{path: path, header: http.CanonicalHeaderKey(headerParamPrefix + header)})
			}
			if err := walk(p.Properties, path); err != nil {
				return err
			}
		}
		return nil
	}
	var root struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	if len(schema) == 0 || json.Unmarshal(schema, &root) != nil {
		return nil, nil
	}
	return out, walk(root.Properties, nil)
}

// headerValue is the header form of the argument at path (see
// argumentText), encoded when it cannot travel as it is.
func headerValue(args json.RawMessage, path []string) (string, bool) {
	s, ok := argumentText(args, path)
	if !ok {
		return "", false
	}
	return encodeHeaderValue(s), true
}

// argumentText is the text a header carries for the argument at path: a
// string as it is, true or false, or an integer that a double holds
// exactly, in decimal. Absent, null and other values have none.
func argumentText(args json.RawMessage, path []string) (string, bool) {
	v := argumentAt(args, path)
	switch {
	case len(v) == 0:
		return "", false
	case v[0] == '"':
		var s string
		if json.Unmarshal(v, &s) != nil {
			return "", false
		}
		return s, true
	case string(v) == "true", string(v) == "false":
		return string(v), true
	}
	f, err := strconv.ParseFloat(string(v), 64)
	const maxSafe = 1<<53 - 1
	if err != nil || f != math.Trunc(f) || math.Abs(f) > maxSafe {
		return "", false
	}
	return strconv.FormatInt(int64(f), 10), true
}

// argumentAt returns the raw argument at a path of property names, or nil.
func argumentAt(args json.RawMessage, path []string) json.RawMessage {
	v := args
	for _, name := range path {
		if v = jsonrpc.Member(v, name); v == nil {
			return nil
		}
	}
	return v
}

// isToken reports whether s is an HTTP field name (RFC 9110 token).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// Mismatch reports a 2026-07-28 request whose mirrored headers disagree
// with its body, as a server must refuse it (SEP-2243): Mcp-Method,
// Mcp-Name and, for a tool that tools (may be nil) has learned, its
// Mcp-Param-* headers. A header that is absent is not a disagreement here: agenthelm
// computes the headers it forwards from the body anyway (see ToolHeaders),
// so it is lenient with agents that leave them out and strict with agents
// whose headers say something other than the body an intermediary
// before agenthelm may have acted on.
//
// The error is a *MismatchError; its text quotes the header and the body,
// which are the agent's own data (do not log it: arguments may hold
// secrets the journal would redact).
func Mismatch(h http.Header, msg *jsonrpc.Message, tools *ToolHeaders) error {
	if v := h.Values(headerMethod); len(v) > 0 && (len(v) > 1 || v[0] != msg.Method) {
		return &MismatchError{Header: headerMethod, msg: fmt.Sprintf("%s %q, but the body's method is %q", headerMethod, strings.Join(v, ", "), msg.Method)}
	}
	name := mirroredName(msg)
	if v := h.Values(headerName); len(v) > 0 {
		got, err := decodeHeaderValue(strings.Join(v, ", "))
		if err != nil || len(v) > 1 || got != name {
			return &MismatchError{Header: headerName, msg: fmt.Sprintf("%s %q, but the body names %q", headerName, strings.Join(v, ", "), name)}
		}
	}
	if msg.Method != "tools/call" || tools == nil {
		return nil
	}
	tools.mu.RLock()
	bindings, known := tools.tools[name]
	tools.mu.RUnlock()
	if !known {
		return nil
	}
	args := jsonrpc.Member(msg.Params, "arguments")
	for _, b := range bindings {
		v := h.Values(b.header)
		if len(v) == 0 {
			continue
		}
		want, ok := argumentText(args, b.path)
		got, err := decodeHeaderValue(strings.Join(v, ", "))
		if err != nil || len(v) > 1 || !ok || !sameHeaderValue(got, want) {
			return &MismatchError{Header: b.header, msg: fmt.Sprintf("%s %q, but the argument %s is %s", b.header, strings.Join(v, ", "),
				strings.Join(b.path, "."), describeArgument(args, b.path))}
		}
	}
	return nil
}

// MismatchError is Mismatch's error: which header disagreed, and how.
type MismatchError struct {
	Header string // the header's name
	msg    string
}

func (e *MismatchError) Error() string { return "header mismatch: " + e.msg }

// decodeHeaderValue undoes encodeHeaderValue: =?base64?...?= is decoded,
// anything else is taken as it is.
func decodeHeaderValue(v string) (string, error) {
	inner, ok := strings.CutPrefix(v, "=?base64?")
	if !ok {
		return v, nil
	}
	inner, ok = strings.CutSuffix(inner, "?=")
	if !ok {
		return v, nil
	}
	b, err := base64.StdEncoding.DecodeString(inner)
	if err != nil {
		return "", fmt.Errorf("not valid base64: %w", err)
	}
	return string(b), nil
}

// sameHeaderValue compares a decoded header with the argument's header
// form; integers compare by value (007 is 7).
func sameHeaderValue(got, want string) bool {
	if got == want {
		return true
	}
	g, err1 := strconv.ParseInt(got, 10, 64)
	w, err2 := strconv.ParseInt(want, 10, 64)
	return err1 == nil && err2 == nil && g == w
}

// describeArgument shows the argument at path for an error message.
func describeArgument(args json.RawMessage, path []string) string {
	v := argumentAt(args, path)
	if v == nil {
		return "absent"
	}
	if len(v) > 64 {
		return string(v[:64]) + "..."
	}
	return string(v)
}
