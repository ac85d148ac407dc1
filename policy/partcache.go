package policy

import (
	"encoding/json"
	"hash/maphash"
	"slices"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/agenthelm/agenthelm/toolcall"
)

// partCache remembers the AST values of the parts of an input that repeat
// from call to call: the tool (per tool), the transport (per session), the
// agent (per agent) and the time (per second). Building them is most of
// what converting an input costs; a hit costs a map lookup. AST values are
// never changed once built, so decisions share them (as they share the
// steps of stepCache). Each kind keeps at most partCacheSize entries and
// starts afresh when full. A nil *partCache builds every time.
type partCache struct {
	seed maphash.Seed

	mu         sync.Mutex
	tools      map[toolKey]toolEntry
	transports map[transportKey]transportEntry
	agents     map[AgentInfo]ast.Value
	amounts    map[amountKey]amountEntry
	time       TimeInfo
	timeValue  ast.Value
}

// partCacheSize bounds each kind of part.
const partCacheSize = 1024

func newPartCache() *partCache {
	return &partCache{
		seed:       maphash.MakeSeed(),
		tools:      map[toolKey]toolEntry{},
		transports: map[transportKey]transportEntry{},
		agents:     map[AgentInfo]ast.Value{},
		amounts:    map[amountKey]amountEntry{},
	}
}

type toolKey struct {
	name, upstream                                     string
	hasCompensator, readOnly, irreversible, idempotent bool
	annotations                                        uint64 // hash of the annotations
	n                                                  int    // and their number
}

type toolEntry struct {
	annotations map[string]any // compared on a hit: a collision never returns the wrong tool
	value       ast.Value
}

type transportKey struct {
	kind, protocol, protocolVersion, sessionID, remoteAddr, method, path string
	headers                                                              uint64 // hash of the headers
	n                                                                    int    // and their number
}

type transportEntry struct {
	headers map[string]string
	value   ast.Value
}

// tool returns the value of t, and whether it is the value the cache
// returns for every input with this tool.
func (c *partCache) tool(t *ToolInfo) (_ ast.Value, shared bool, _ error) {
	h, ok := c.hashScalars(t.Annotations)
	if !ok { // annotations that are not all scalars: not worth caching
		v, err := toolValue(t)
		return v, false, err
	}
	k := toolKey{
		name: t.Name, upstream: t.Upstream,
		hasCompensator: t.HasCompensator, readOnly: t.ReadOnly, irreversible: t.Irreversible, idempotent: t.Idempotent,
		annotations: h, n: len(t.Annotations),
	}
	c.mu.Lock()
	e, hit := c.tools[k]
	c.mu.Unlock()
	if hit && sameScalars(e.annotations, t.Annotations) {
		return e.value, true, nil
	}
	v, err := toolValue(t)
	if err != nil {
		return nil, false, err
	}
	ann := make(map[string]any, len(t.Annotations))
	for name, x := range t.Annotations {
		ann[name] = x
	}
	c.mu.Lock()
	if len(c.tools) >= partCacheSize {
		clear(c.tools)
	}
	c.tools[k] = toolEntry{annotations: ann, value: v}
	c.mu.Unlock()
	return v, true, nil
}

// transport returns the value of t.
func (c *partCache) transport(t *toolcall.Transport) ast.Value {
	if len(t.Params) > 0 || len(t.Query) > 0 {
		// An HTTP call's query (and placeholders) vary from call to call
		// and are not part of the key: built every time.
		return transportValue(t)
	}
	var h uint64
	for name, v := range t.Headers { // order-independent
		h += maphash.String(c.seed, name+"\x00"+v)
	}
	k := transportKey{
		kind: t.Kind, protocol: t.Protocol, protocolVersion: t.ProtocolVersion, sessionID: t.SessionID,
		remoteAddr: t.RemoteAddr, method: t.Method, path: t.Path, headers: h, n: len(t.Headers),
	}
	c.mu.Lock()
	e, hit := c.transports[k]
	c.mu.Unlock()
	if hit && sameHeaders(e.headers, t.Headers) {
		return e.value
	}
	v := transportValue(t)
	headers := make(map[string]string, len(t.Headers))
	for name, x := range t.Headers {
		headers[name] = x
	}
	c.mu.Lock()
	if len(c.transports) >= partCacheSize {
		clear(c.transports)
	}
	c.transports[k] = transportEntry{headers: headers, value: v}
	c.mu.Unlock()
	return v
}

// agent returns the value of a.
func (c *partCache) agent(a *AgentInfo) ast.Value {
	c.mu.Lock()
	v, hit := c.agents[*a]
	c.mu.Unlock()
	if hit {
		return v
	}
	v = agentValue(a)
	c.mu.Lock()
	if len(c.agents) >= partCacheSize {
		clear(c.agents)
	}
	c.agents[*a] = v
	c.mu.Unlock()
	return v
}

type amountKey struct{ upstream, tool, status, arg string }

type amountEntry struct {
	values []*ast.Term // compared by identity: the step cache hands out the same terms
	term   *ast.Term
}

// amount returns the entry of saga.amounts for g. A saga's amounts change
// only when a step with amounts is added or changes status, so most calls
// find the entries of the previous one. A nil *partCache builds every time.
func (c *partCache) amount(g *amountGroup) *ast.Term {
	if c == nil {
		return amountTerm(g)
	}
	k := amountKey{g.upstream, g.tool, g.status, g.arg}
	c.mu.Lock()
	e, hit := c.amounts[k]
	c.mu.Unlock()
	if hit && slices.Equal(e.values, g.values) {
		return e.term
	}
	t := amountTerm(g)
	c.mu.Lock()
	if len(c.amounts) >= partCacheSize {
		clear(c.amounts)
	}
	c.amounts[k] = amountEntry{values: g.values, term: t}
	c.mu.Unlock()
	return t
}

// timeOf returns the value of t: the last one is kept, as calls come in
// the same second.
func (c *partCache) timeOf(t *TimeInfo) ast.Value {
	c.mu.Lock()
	if c.timeValue != nil && c.time == *t {
		v := c.timeValue
		c.mu.Unlock()
		return v
	}
	c.mu.Unlock()
	v := timeValue(t)
	c.mu.Lock()
	c.time, c.timeValue = *t, v
	c.mu.Unlock()
	return v
}

// hashScalars hashes an annotations map whose values are all JSON scalars,
// independently of the order of its keys; ok is false for other values.
func (c *partCache) hashScalars(m map[string]any) (h uint64, ok bool) {
	for name, v := range m {
		var s string
		switch x := v.(type) {
		case nil:
			s = "n"
		case bool:
			if x {
				s = "t"
			} else {
				s = "f"
			}
		case string:
			s = "s" + x
		case json.Number:
			s = "#" + string(x)
		default:
			return 0, false
		}
		h += maphash.String(c.seed, name+"\x00"+s)
	}
	return h, true
}

// sameScalars compares two maps of JSON scalars (see hashScalars).
func sameScalars(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for name, x := range a {
		y, ok := b[name]
		if !ok || x != y {
			return false
		}
	}
	return true
}

func sameHeaders(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for name, x := range a {
		if y, ok := b[name]; !ok || x != y {
			return false
		}
	}
	return true
}
