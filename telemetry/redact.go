package telemetry

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/itchyny/gojq"

	"github.com/agenthelm/agenthelm/config"
	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
)

// Redacted replaces every masked value.
const Redacted = "[REDACTED]"

var redactedJSON = []byte(`"` + Redacted + `"`)

// maxPathsPerExpr bounds how many paths one redaction expression may
// produce on one document (a runaway expression such as recurse over a
// huge document stops there).
const maxPathsPerExpr = 10000

// Redactor masks secrets in call arguments and results before they are
// shown or exported (span attributes, logs, approval notifications).
//
// It masks:
//   - the value of every object member whose name is one of the keys, at
//     any depth; names compare case-insensitively and ignoring '_' and '-',
//     so the key api_key also matches apiKey, API-KEY and Api_Key;
//   - the values the jq paths select, such as .args.card.number;
//   - payment card numbers (13 to 19 digits, optionally grouped by single
//     spaces or dashes, passing the Luhn check) inside any string value.
//
// Masked values become the string "[REDACTED]"; a card number inside a
// longer string is replaced within it. Everything else keeps its bytes.
// A nil *Redactor masks nothing. A Redactor is safe for concurrent use.
type Redactor struct {
	keys  []string // normalized: lower case, no '_' or '-'
	paths []redactPath
	keyRE *regexp.Regexp // key=value and key: value in plain text
}

type redactPath struct {
	source string
	code   *gojq.Code
}

// NewRedactor builds a Redactor from the redaction section of the config.
// Paths are jq path expressions into the call document ({args, result} for
// MCP calls, {request, response} for HTTP ones); an expression that is not
// a path expression (such as .args | tostring) is an error when compiled
// here only if it does not parse, and otherwise simply selects nothing.
func NewRedactor(cfg config.Redaction) (*Redactor, error) {
	r := &Redactor{}
	seen := map[string]bool{}
	for _, k := range cfg.Keys {
		n := normalizeKey(strings.TrimSpace(k))
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		r.keys = append(r.keys, n)
	}
	for i, e := range cfg.Paths {
		if e.IsZero() {
			continue
		}
		// The newline ends a trailing jq comment before the parenthesis.
		q, err := gojq.Parse("path(" + e.Source + "\n)")
		if err != nil {
			return nil, fmt.Errorf("redaction.paths[%d]: %q is not a jq path expression: %v", i, e.Source, err)
		}
		code, err := gojq.Compile(q, gojq.WithEnvironLoader(func() []string { return nil }))
		if err != nil {
			return nil, fmt.Errorf("redaction.paths[%d]: %q: %v", i, e.Source, err)
		}
		r.paths = append(r.paths, redactPath{source: e.Source, code: code})
	}
	if len(r.keys) > 0 {
		alts := make([]string, len(r.keys))
		for i, k := range r.keys {
			alts[i] = keyPattern(k)
		}
		// A key, not preceded by a name character, then an optional
		// closing quote, then = or :. The value is delimited in code.
		r.keyRE = regexp.MustCompile(`(?i)(?:^|[^A-Za-z0-9_-])(` + strings.Join(alts, "|") + `)["']?[ \t]*([:=])[ \t]*`)
	}
	return r, nil
}

// DefaultRedactor masks the keys of config.Default's redaction section
// (password, token, secret, authorization, api_key, card_number) and card
// numbers.
func DefaultRedactor() *Redactor {
	r, err := NewRedactor(config.Default().Redaction)
	if err != nil {
		panic(err) // the defaults have no paths
	}
	return r
}

// JSON returns raw with secrets masked. Paths are evaluated with raw as the
// root, so for the paths of the config raw should be a whole call document
// ({"args": ..., "result": ...}); see Member for one part of it. Bytes that
// are not one JSON value are treated as text (String). When nothing is
// masked, raw itself is returned.
func (r *Redactor) JSON(raw json.RawMessage) json.RawMessage {
	if r == nil || len(raw) == 0 {
		return raw
	}
	if !json.Valid(raw) {
		s := r.String(string(raw))
		if s == string(raw) {
			return raw
		}
		return json.RawMessage(s)
	}
	var paths map[string]bool
	if len(r.paths) > 0 {
		var doc any
		if err := json.Unmarshal(raw, &doc); err == nil {
			paths = r.pathSet(doc, "")
		}
	}
	return r.redact(raw, paths)
}

// Member returns raw, the value of member name of the call document
// ("args", "result", "request" or "response"), with secrets masked: the
// configured paths under that member (such as .args.card.number for
// "args") apply to it, and so do the keys and card numbers.
func (r *Redactor) Member(name string, raw json.RawMessage) json.RawMessage {
	if r == nil || len(raw) == 0 {
		return raw
	}
	if !json.Valid(raw) {
		return r.JSON(raw)
	}
	var paths map[string]bool
	if len(r.paths) > 0 {
		var v any
		if err := json.Unmarshal(raw, &v); err == nil {
			if name == "response" {
				paths = r.responsePaths(v)
			} else {
				paths = r.pathSet(map[string]any{name: v}, name)
			}
		}
	}
	return r.redact(raw, paths)
}

// responsePaths evaluates the .response paths on an HTTP tool call's
// result, in which the response document ({status, headers, body}) is
// structuredContent and the body's text is also a text content item. The
// selected paths are masked under structuredContent, and when any is, the
// text items are masked whole: they are a copy of the body that a path
// into the JSON cannot reach.
func (r *Redactor) responsePaths(result any) map[string]bool {
	m, _ := result.(map[string]any)
	sc, ok := m["structuredContent"]
	if !ok {
		return nil
	}
	inner := r.pathSet(map[string]any{"response": sc}, "response")
	if len(inner) == 0 {
		return nil
	}
	paths := make(map[string]bool, len(inner)+1)
	prefix := string(appendKeyElem(nil, "structuredContent"))
	for p := range inner {
		paths[prefix+p] = true
	}
	content, _ := m["content"].([]any)
	for i, c := range content {
		if item, ok := c.(map[string]any); ok && item["type"] == "text" {
			paths[string(appendKeyElem(appendIndexElem(appendKeyElem(nil, "content"), i), "text"))] = true
		}
	}
	return paths
}

// String masks secrets in free text: a JSON object or array is handled as
// JSON; otherwise the values in key=value and key: value forms whose key
// is a redaction key (Authorization: Bearer x, ?token=abc) and card
// numbers are masked.
func (r *Redactor) String(s string) string {
	if r == nil || s == "" {
		return s
	}
	if t := strings.TrimSpace(s); t != "" && (t[0] == '{' || t[0] == '[') && json.Valid([]byte(t)) {
		return string(r.JSON(json.RawMessage(s)))
	}
	s = r.maskKeyValues(s)
	s, _ = maskCards(s)
	return s
}

// redact walks raw (valid JSON) and splices the masked values in.
func (r *Redactor) redact(raw json.RawMessage, paths map[string]bool) json.RawMessage {
	w := walker{r: r, b: raw, paths: paths}
	w.value(0)
	if len(w.edits) == 0 {
		return raw
	}
	out := make([]byte, 0, len(raw)+16*len(w.edits))
	last := 0
	for _, e := range w.edits {
		out = append(out, raw[last:e.start]...)
		out = append(out, e.repl...)
		last = e.end
	}
	return append(out, raw[last:]...)
}

// pathSet runs the path expressions on doc and returns the selected paths,
// encoded as the walker encodes its position. With strip set, only paths
// whose first element is strip count, and that element is dropped.
func (r *Redactor) pathSet(doc any, strip string) map[string]bool {
	set := map[string]bool{}
	for _, p := range r.paths {
		iter := p.code.Run(doc)
		for n := 0; n < maxPathsPerExpr; n++ {
			v, ok := iter.Next()
			if !ok {
				break
			}
			if _, isErr := v.(error); isErr {
				break // e.g. iterating over a member that is absent
			}
			elems, ok := v.([]any)
			if !ok {
				continue
			}
			if strip != "" {
				if len(elems) == 0 || elems[0] != strip {
					continue
				}
				elems = elems[1:]
			}
			if key, ok := encodePath(elems); ok {
				set[key] = true
			}
		}
	}
	if len(set) == 0 {
		return nil
	}
	return set
}

// encodePath encodes a jq path like the walker's position: each element is
// 'k' name NUL or 'i' index NUL.
func encodePath(elems []any) (string, bool) {
	var b []byte
	for _, e := range elems {
		switch e := e.(type) {
		case string:
			b = appendKeyElem(b, e)
		case int:
			if e < 0 {
				return "", false // relative to the end: not supported
			}
			b = appendIndexElem(b, e)
		case float64:
			if e < 0 || e != float64(int(e)) {
				return "", false
			}
			b = appendIndexElem(b, int(e))
		default:
			return "", false // slices and the like
		}
	}
	return string(b), true
}

func appendKeyElem(b []byte, k string) []byte {
	b = append(b, 'k')
	b = append(b, k...)
	return append(b, 0)
}

func appendIndexElem(b []byte, i int) []byte {
	b = append(b, 'i')
	b = strconv.AppendInt(b, int64(i), 10)
	return append(b, 0)
}

// edit replaces b[start:end] with repl.
type edit struct {
	start, end int
	repl       []byte
}

// walker scans a valid JSON document and records the edits that mask it.
type walker struct {
	r     *Redactor
	b     []byte
	paths map[string]bool
	path  []byte // the current position, encoded as in encodePath
	edits []edit
}

// value walks the value starting at or after i and returns its end.
func (w *walker) value(i int) int {
	i = skipWS(w.b, i)
	if w.paths != nil && w.paths[string(w.path)] {
		end := skipValue(w.b, i)
		w.edits = append(w.edits, edit{i, end, redactedJSON})
		return end
	}
	switch w.b[i] {
	case '{':
		return w.object(i)
	case '[':
		return w.array(i)
	case '"':
		end := scanString(w.b, i)
		w.str(i, end)
		return end
	}
	return scanScalar(w.b, i)
}

func (w *walker) object(i int) int {
	i = skipWS(w.b, i+1)
	if w.b[i] == '}' {
		return i + 1
	}
	for {
		ks := skipWS(w.b, i)
		ke := scanString(w.b, ks)
		key := stringContent(w.b[ks:ke])
		i = skipWS(w.b, ke) + 1 // past ':'
		if w.r.isKey(key) {
			vs := skipWS(w.b, i)
			i = skipValue(w.b, vs)
			w.edits = append(w.edits, edit{vs, i, redactedJSON})
		} else {
			n := len(w.path)
			w.path = appendKeyElem(w.path, key)
			i = w.value(i)
			w.path = w.path[:n]
		}
		i = skipWS(w.b, i)
		if w.b[i] == '}' {
			return i + 1
		}
		i++ // ','
	}
}

func (w *walker) array(i int) int {
	i = skipWS(w.b, i+1)
	if w.b[i] == ']' {
		return i + 1
	}
	for idx := 0; ; idx++ {
		n := len(w.path)
		w.path = appendIndexElem(w.path, idx)
		i = w.value(i)
		w.path = w.path[:n]
		i = skipWS(w.b, i)
		if w.b[i] == ']' {
			return i + 1
		}
		i++ // ','
	}
}

// str masks card numbers inside the string literal b[start:end].
func (w *walker) str(start, end int) {
	lit := w.b[start:end]
	digits := 0
	for _, c := range lit {
		if c >= '0' && c <= '9' {
			digits++
		}
	}
	if digits < minCardDigits {
		return
	}
	masked, changed := maskCards(stringContent(lit))
	if !changed {
		return
	}
	repl, err := jsonrpc.Marshal(masked)
	if err != nil {
		return
	}
	w.edits = append(w.edits, edit{start, end, repl})
}

// isKey reports whether an object member name is a redaction key.
func (r *Redactor) isKey(name string) bool {
	if len(r.keys) == 0 {
		return false
	}
	for _, k := range r.keys {
		if equalNormalized(name, k) {
			return true
		}
	}
	return false
}

// normalizeKey lowercases k and drops '_' and '-'.
func normalizeKey(k string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(k) {
		if c != '_' && c != '-' {
			b.WriteRune(c)
		}
	}
	return b.String()
}

// equalNormalized reports whether normalizeKey(name) == norm, without
// allocating for ASCII names.
func equalNormalized(name, norm string) bool {
	j := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= utf8.RuneSelf {
			return normalizeKey(name) == norm
		}
		if c == '_' || c == '-' {
			continue
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if j >= len(norm) || norm[j] != c {
			return false
		}
		j++
	}
	return j == len(norm)
}

// keyPattern is a regexp for a normalized key that also matches it with
// '_' or '-' between its characters (api_key, api-key, apikey).
func keyPattern(norm string) string {
	var b strings.Builder
	for i, c := range norm {
		if i > 0 {
			b.WriteString(`[_-]?`)
		}
		b.WriteString(regexp.QuoteMeta(string(c)))
	}
	return b.String()
}

// maskKeyValues masks the values of key=value and key: value pairs in
// text. A quoted value is masked inside its quotes; an unquoted one after
// = ends at white space, &, ; or ,; after : it ends at the end of the line,
// ; or , (so "Authorization: Bearer x" masks "Bearer x").
func (r *Redactor) maskKeyValues(s string) string {
	if r.keyRE == nil {
		return s
	}
	locs := r.keyRE.FindAllStringSubmatchIndex(s, -1)
	if locs == nil {
		return s
	}
	var b strings.Builder
	last := 0
	for _, loc := range locs {
		vs := loc[1] // the value starts after the separator and blanks
		if vs < last || vs >= len(s) {
			continue
		}
		sep := s[loc[4]]
		var ve int
		switch q := s[vs]; {
		case q == '"' || q == '\'':
			vs++
			ve = vs
			for ve < len(s) && s[ve] != q {
				if s[ve] == '\\' {
					ve++
				}
				ve++
			}
			ve = min(ve, len(s))
		case sep == '=':
			ve = vs + strings.IndexFunc(s[vs:], func(c rune) bool { return strings.ContainsRune(" \t\r\n&;,\"'", c) })
			if ve < vs {
				ve = len(s)
			}
		default:
			ve = vs + strings.IndexAny(s[vs:], "\r\n;,")
			if ve < vs {
				ve = len(s)
			}
			for ve > vs && (s[ve-1] == ' ' || s[ve-1] == '\t') {
				ve--
			}
		}
		if ve <= vs {
			continue
		}
		b.WriteString(s[last:vs])
		b.WriteString(Redacted)
		last = ve
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// Payment card numbers have 13 to 19 digits (ISO/IEC 7812).
const (
	minCardDigits = 13
	maxCardDigits = 19
)

// digitRun finds runs of digits joined by single spaces or dashes.
var digitRun = regexp.MustCompile(`[0-9]+(?:[ -][0-9]+)*`)

// maskCards replaces payment card numbers in s by Redacted. A candidate is
// a run of 13 to 19 digits, either unbroken or in groups of 3 to 6 digits
// separated by single spaces or dashes (4111 1111 1111 1111, 3782-822463-10005),
// that passes the Luhn check. A run that is grouped otherwise is checked
// group by group.
func maskCards(s string) (string, bool) {
	locs := digitRun.FindAllStringIndex(s, -1)
	if locs == nil {
		return s, false
	}
	var b strings.Builder
	last := 0
	mask := func(start, end int) {
		b.WriteString(s[last:start])
		b.WriteString(Redacted)
		last = end
	}
	for _, loc := range locs {
		run := s[loc[0]:loc[1]]
		if len(run) < minCardDigits {
			continue
		}
		if isCardRun(run) {
			mask(loc[0], loc[1])
			continue
		}
		// Check each group alone: "call 555 4111111111111111".
		off := loc[0]
		for _, g := range strings.FieldsFunc(run, func(c rune) bool { return c == ' ' || c == '-' }) {
			i := off + strings.Index(s[off:loc[1]], g)
			if len(g) >= minCardDigits && len(g) <= maxCardDigits && luhn(g) {
				mask(i, i+len(g))
			}
			off = i + len(g)
		}
	}
	if last == 0 {
		return s, false
	}
	b.WriteString(s[last:])
	return b.String(), true
}

// isCardRun reports whether a digit run is a card number as a whole.
func isCardRun(run string) bool {
	groups := strings.FieldsFunc(run, func(c rune) bool { return c == ' ' || c == '-' })
	var digits strings.Builder
	for _, g := range groups {
		if len(groups) > 1 && (len(g) < 3 || len(g) > 6) {
			return false
		}
		digits.WriteString(g)
	}
	d := digits.String()
	return len(d) >= minCardDigits && len(d) <= maxCardDigits && luhn(d)
}

// luhn reports whether the decimal digits d pass the Luhn check.
func luhn(d string) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		n := int(d[i] - '0')
		if double {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
		double = !double
	}
	return sum%10 == 0
}
