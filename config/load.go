package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Load reads the file at path and returns its Config: the file decoded
// strictly over Default, then the AGENTHELM_* environment overrides, then
// Validate. Errors name the file, the line and the field.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, path)
}

// Parse is Load for a file already read; source names it in messages.
func Parse(data []byte, source string) (*Config, error) {
	return parse(data, source, os.LookupEnv)
}

func parse(data []byte, source string, lookup func(string) (string, bool)) (*Config, error) {
	c, err := decode(data, source)
	if err != nil {
		return nil, err
	}
	c.applyEnv(lookup)
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Marshal writes c as YAML that Parse reads back into an equal Config.
// The output includes admin.token when one is set: do not log it.
func (c *Config) Marshal() ([]byte, error) {
	return yaml.MarshalWithOptions(c, yaml.Indent(2), yaml.IndentSequence(true))
}

// decode parses data and decodes it strictly over Default.
func decode(data []byte, source string) (c *Config, err error) {
	c = Default()
	c.source = source
	file, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, c.decodeError(err, nil)
	}
	var body ast.Node
	for _, doc := range file.Docs {
		if doc == nil || doc.Body == nil {
			continue
		}
		if body != nil {
			return nil, c.decodeError(&nodeError{tok: doc.Body.GetToken(), err: errors.New("the file holds more than one YAML document; agenthelm reads one")}, nil)
		}
		body = doc.Body
	}
	if body == nil {
		return c, nil // empty file: defaults
	}
	if n := expandedSize(body); n > maxExpandedNodes {
		return nil, c.decodeError(&nodeError{tok: body.GetToken(),
			err: fmt.Errorf("the file has more than %d YAML nodes, counting what aliases expand to", maxExpandedNodes)}, nil)
	}
	idx := newNodeIndex()
	idx.walk(body, nil)
	if idx.err != nil {
		return nil, c.decodeError(idx.err, idx)
	}
	c.lines = idx.lines
	// The parser has already rejected duplicate keys; allowing them in the
	// decoder lets a mapping override the keys it merges in with "<<".
	dec := yaml.NewDecoder(bytes.NewReader(nil), yaml.Strict(), yaml.AllowDuplicateMapKey())
	if err := dec.DecodeFromNode(body, c); err != nil {
		return nil, c.decodeError(err, idx)
	}
	// An endpoint without an exporter means "export there".
	if _, set := c.lines["telemetry.exporter"]; !set && c.Telemetry.OTLPEndpoint != "" {
		c.Telemetry.Exporter = ExporterOTLP
	}
	return c, nil
}

// maxExpandedNodes bounds the size of a file with its aliases expanded, so
// that a few lines of nested aliases ("billion laughs") cannot make
// decoding take minutes. Real configurations are far below it.
const maxExpandedNodes = 100_000

// expandedSize counts the nodes of the document rooted at body as if every
// alias were replaced by what it refers to, stopping once the count is
// past maxExpandedNodes.
func expandedSize(body ast.Node) int {
	anchors := map[string]int{} // anchor name -> expanded size of its value
	var size func(ast.Node) int
	size = func(node ast.Node) int {
		switch n := node.(type) {
		case nil:
			return 0
		case *ast.AnchorNode:
			v := size(n.Value)
			if n.Name != nil {
				anchors[n.Name.GetToken().Value] = v
			}
			return 1 + v
		case *ast.AliasNode:
			if n.Value == nil {
				return 1
			}
			return 1 + anchors[n.Value.GetToken().Value]
		case *ast.TagNode:
			return 1 + size(n.Value)
		case *ast.MappingNode:
			total := 1
			for _, kv := range n.Values {
				if total += size(kv); total > maxExpandedNodes {
					break
				}
			}
			return total
		case *ast.MappingValueNode:
			return 1 + size(n.Key) + size(n.Value)
		case *ast.SequenceNode:
			total := 1
			for _, v := range n.Values {
				if total += size(v); total > maxExpandedNodes {
					break
				}
			}
			return total
		}
		return 1
	}
	return size(body)
}

// nodeError is a decode error from one of this package's unmarshalers,
// carrying the offending node's token for its position.
type nodeError struct {
	tok *token.Token
	err error
}

func (e *nodeError) Error() string { return e.err.Error() }
func (e *nodeError) Unwrap() error { return e.err }

func nodeErrorf(node ast.Node, format string, args ...any) error {
	return &nodeError{tok: node.GetToken(), err: fmt.Errorf(format, args...)}
}

// unwrap looks through tags and anchors to the value node.
func unwrap(node ast.Node) ast.Node {
	for {
		switch n := node.(type) {
		case *ast.TagNode:
			node = n.Value
		case *ast.AnchorNode:
			node = n.Value
		default:
			return node
		}
	}
}

// stringValue returns the text of a string or block scalar node.
func stringValue(node ast.Node) (string, bool) {
	switch n := unwrap(node).(type) {
	case *ast.StringNode:
		return n.Value, true
	case *ast.LiteralNode:
		if n.Value == nil {
			return "", true
		}
		return n.Value.Value, true
	}
	return "", false
}

// nodeKind names a node's YAML type for messages.
func nodeKind(node ast.Node) string {
	if node == nil {
		return "nothing"
	}
	return nodeTypeName(node.Type())
}

func nodeTypeName(t ast.NodeType) string {
	switch t {
	case ast.MappingType, ast.MappingValueType:
		return "a mapping"
	case ast.SequenceType:
		return "a list"
	case ast.StringType, ast.LiteralType:
		return "a string"
	case ast.IntegerType:
		return "an integer"
	case ast.FloatType, ast.InfinityType, ast.NanType:
		return "a number"
	case ast.BoolType:
		return "a boolean"
	case ast.NullType:
		return "null"
	}
	return t.YAMLName()
}

// pathSeg is one step of a field path: a key, or a list index.
type pathSeg struct {
	key     string
	index   int
	isIndex bool
}

// fieldPath names a field as the file does: upstreams.memory.tools.x,
// routes[0].method. Keys that are not plain words are quoted.
type fieldPath []pathSeg

func (p fieldPath) key(k string) fieldPath { return append(slices.Clip(p), pathSeg{key: k}) }
func (p fieldPath) idx(i int) fieldPath {
	return append(slices.Clip(p), pathSeg{index: i, isIndex: true})
}

func (p fieldPath) String() string {
	var b strings.Builder
	for i, s := range p {
		if s.isIndex {
			fmt.Fprintf(&b, "[%d]", s.index)
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		if plainKey(s.key) {
			b.WriteString(s.key)
		} else {
			b.WriteString(strconv.Quote(s.key))
		}
	}
	return b.String()
}

func plainKey(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '/') {
			return false
		}
	}
	return true
}

// nodeIndex maps field paths to lines and token positions to field paths.
type nodeIndex struct {
	lines   map[string]int        // field path -> line of its key (or list item)
	paths   map[[2]int]fieldPath  // token line:column -> field path
	anchors map[string]ast.Node   // anchor name -> value, for merge keys
	seen    map[ast.Node]struct{} // guards against alias cycles
	err     error                 // the first tag the decoder cannot take
}

func newNodeIndex() *nodeIndex {
	return &nodeIndex{
		lines:   map[string]int{},
		paths:   map[[2]int]fieldPath{},
		anchors: map[string]ast.Node{},
		seen:    map[ast.Node]struct{}{},
	}
}

func tokPos(t *token.Token) [2]int {
	if t == nil || t.Position == nil {
		return [2]int{}
	}
	return [2]int{t.Position.Line, t.Position.Column}
}

func (x *nodeIndex) note(node ast.Node, p fieldPath) {
	if node == nil {
		return
	}
	if t := node.GetToken(); t != nil && t.Position != nil {
		x.paths[tokPos(t)] = p
	}
}

// maxIndexDepth bounds how deep walk indexes positions: agenthelm.yaml's
// fields are at most eight levels deep, and building paths for absurdly
// nested input would take quadratic time. Deeper nodes are reported at
// the line of their deepest indexed ancestor.
const maxIndexDepth = 32

// walk records the position of every field under node, found at path p.
func (x *nodeIndex) walk(node ast.Node, p fieldPath) {
	if node == nil || len(p) > maxIndexDepth {
		return
	}
	if _, ok := x.seen[node]; ok {
		return
	}
	x.seen[node] = struct{}{}
	switch n := node.(type) {
	case *ast.TagNode:
		// agenthelm defines no tags, and the decoder panics on some tagged
		// values (a tag over a non-list where a list is expected): refuse
		// them all; quoting does what !!str would.
		x.fail(n, fmt.Errorf("YAML tags such as %s are not supported: write the value plainly, quoted if it must be a string", n.Start.Value))
		x.note(n.Value, p)
		x.walk(n.Value, p)
	case *ast.AnchorNode:
		if n.Name != nil {
			x.anchors[n.Name.GetToken().Value] = n.Value
		}
		x.note(n.Value, p)
		x.walk(n.Value, p)
	case *ast.MappingNode:
		for _, kv := range n.Values {
			x.walk(kv, p)
		}
	case *ast.MappingValueNode:
		if n.Key == nil {
			return
		}
		if n.Key.IsMergeKey() {
			x.walkMerge(n.Value, p)
			return
		}
		if _, tagged := n.Key.(*ast.TagNode); tagged {
			x.fail(n.Key, errors.New("YAML tags are not supported on keys"))
		}
		kp := p.key(keyString(n.Key))
		if t := n.Key.GetToken(); t != nil && t.Position != nil {
			if _, dup := x.lines[kp.String()]; !dup {
				x.lines[kp.String()] = t.Position.Line
			}
		}
		x.note(n.Key, kp)
		x.note(n.Value, kp)
		x.walk(n.Value, kp)
	case *ast.SequenceNode:
		for i, v := range n.Values {
			ip := p.idx(i)
			if t := v.GetToken(); t != nil && t.Position != nil {
				x.lines[ip.String()] = t.Position.Line
			}
			x.note(v, ip)
			x.walk(v, ip)
		}
	}
}

func (x *nodeIndex) fail(node ast.Node, err error) {
	if x.err == nil {
		x.err = &nodeError{tok: node.GetToken(), err: err}
	}
}

// walkMerge indexes the keys a merge key (<<: *anchor) brings in, at
// the merging mapping's path, without overriding keys written there.
func (x *nodeIndex) walkMerge(v ast.Node, p fieldPath) {
	if len(p) > maxIndexDepth {
		return
	}
	switch n := v.(type) {
	case *ast.AliasNode:
		if n.Value != nil {
			if target, ok := x.anchors[n.Value.GetToken().Value]; ok {
				x.walkMerge(target, p)
			}
		}
	case *ast.SequenceNode:
		for _, e := range n.Values {
			x.walkMerge(e, p)
		}
	case *ast.AnchorNode, *ast.TagNode:
		x.walkMerge(unwrap(n), p)
	case *ast.MappingNode, *ast.MappingValueNode:
		// Keys already present win; record only the new ones.
		sub := newNodeIndex()
		sub.anchors = x.anchors
		sub.walk(n, p)
		for k, l := range sub.lines {
			if _, ok := x.lines[k]; !ok {
				x.lines[k] = l
			}
		}
		for pos, fp := range sub.paths {
			if _, ok := x.paths[pos]; !ok {
				x.paths[pos] = fp
			}
		}
	}
}

func keyString(k ast.MapKeyNode) string {
	if mk, ok := k.(*ast.MappingKeyNode); ok && mk.Value != nil {
		if s, ok := stringValue(mk.Value); ok {
			return s
		}
		return mk.Value.String()
	}
	if s, ok := stringValue(k); ok {
		return s
	}
	if t := k.GetToken(); t != nil {
		return t.Value
	}
	return k.String()
}

// decodeError turns an error from the YAML parser or decoder into
// "file:line:column: field.path: problem".
func (c *Config) decodeError(err error, idx *nodeIndex) error {
	var (
		tok *token.Token
		msg string
	)
	var ne *nodeError
	var ye yaml.Error
	switch {
	case errors.As(err, &ne):
		tok, msg = ne.tok, ne.err.Error()
	case errors.As(err, &ye):
		tok, msg = ye.GetToken(), ye.GetMessage()
		var te *yaml.TypeError
		var ue *yaml.UnexpectedNodeTypeError
		switch {
		case errors.As(err, &te):
			msg = fmt.Sprintf("expected %s, got %s", yamlTypeName(te.DstType), yamlTypeName(te.SrcType))
		case errors.As(err, &ue):
			msg = fmt.Sprintf("expected %s, got %s", nodeTypeName(ue.Expected), nodeTypeName(ue.Actual))
		}
	default:
		msg = err.Error()
	}
	if msg == "" {
		msg = "invalid YAML"
	}
	fe := &fieldError{problem: msg}
	if tok != nil && tok.Position != nil {
		fe.where = locate(c.source, fmt.Sprintf("%d:%d", tok.Position.Line, tok.Position.Column))
		if idx != nil {
			p, ok := idx.paths[tokPos(tok)]
			var uf *yaml.UnknownFieldError
			if ok && errors.As(err, &uf) && len(p) > 0 {
				// Name the mapping that has the stray key, and suggest.
				unknown := p[len(p)-1].key
				p = p[:len(p)-1]
				fe.problem = fmt.Sprintf("unknown field %q%s", unknown, suggest(unknown, p))
			}
			if ok {
				fe.field = p.String()
			}
		}
	} else {
		fe.where = locate(c.source, "")
	}
	return fe
}

func locate(source, pos string) string {
	switch {
	case source != "" && pos != "":
		return source + ":" + pos
	case source != "":
		return source
	case pos != "":
		return "line " + pos
	}
	return ""
}

// yamlTypeName names a Go type as the YAML that decodes into it.
func yamlTypeName(t reflect.Type) string {
	if t == nil {
		return "null"
	}
	switch t {
	case reflect.TypeFor[Duration]():
		return "a duration such as 90s"
	case reflect.TypeFor[ByteSize]():
		return "a size such as 4MiB"
	case reflect.TypeFor[Expr]():
		return "a jq expression in a string"
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "a mapping"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Pointer:
		return yamlTypeName(t.Elem())
	}
	return t.String()
}

// suggest returns ` (did you mean "x"?)` when a known key of the mapping at
// p is close to the unknown key, or lists the known keys when there are few.
func suggest(unknown string, p fieldPath) string {
	t := typeAt(reflect.TypeFor[Config](), p)
	if t == nil || t.Kind() != reflect.Struct {
		return ""
	}
	keys := yamlKeys(t)
	best, bestDist := "", 3
	for _, k := range keys {
		if d := editDistance(strings.ToLower(unknown), k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return " (known: " + strings.Join(keys, ", ") + ")"
}

// typeAt follows p from t through struct fields (by yaml name), map values
// and list elements.
func typeAt(t reflect.Type, p fieldPath) reflect.Type {
	for _, s := range p {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch t.Kind() {
		case reflect.Struct:
			f, ok := fieldByYAMLName(t, s.key)
			if !ok {
				return nil
			}
			t = f.Type
		case reflect.Map, reflect.Slice:
			t = t.Elem()
		default:
			return nil
		}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}

func yamlKeys(t reflect.Type) []string {
	var keys []string
	for f := range t.Fields() {
		if n := yamlName(f); n != "" {
			keys = append(keys, n)
		}
	}
	return keys
}

func fieldByYAMLName(t reflect.Type, name string) (reflect.StructField, bool) {
	for f := range t.Fields() {
		if yamlName(f) == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
