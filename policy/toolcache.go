package policy

import (
	"maps"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// Rules that depend only on data and on the called tool (input.tool: its
// name, upstream, facts and annotations), such as what the settings say
// about the tool or whether it can be undone, have the same value for
// every call of that tool within a revision. A revision keeps their values
// per tool as decisions compute them: the first decision for a tool
// computes them as usual, and the following ones start with them in their
// virtual-document cache, as they start with the static values.
//
// A tool rule is a complete rule whose bodies and head read no input but
// input.tool, and otherwise follow the rules for static rules (static.go);
// cacheableRules finds them. Values are taken from a decision's cache
// only when the evaluation succeeded, and only those computed outside any
// `with`, so they are exactly the values each decision would compute.
//
// The key is the tool's AST value itself, by identity: the engine's part
// cache hands out the same value for the same tool, so a lookup is a map
// access. An input whose tool value is not shared (annotations that are
// not all scalars, or no part cache) is evaluated without it.

// toolCacheSize bounds the tools a revision keeps values for; it starts
// afresh when full.
const toolCacheSize = 1024

// toolCache holds a revision's tool rule values, by tool.
type toolCache struct {
	refs []ast.Ref // the tool rules a decision can reach

	mu     sync.Mutex
	byTool map[ast.Value]staticValues // never changed once stored: replaced
}

func newToolCache(refs []ast.Ref) *toolCache {
	if len(refs) == 0 {
		return nil
	}
	return &toolCache{refs: refs, byTool: map[ast.Value]staticValues{}}
}

// get returns the values known for tool (nil: none).
func (c *toolCache) get(tool ast.Value) staticValues {
	if c == nil || tool == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byTool[tool]
}

// learn adds to what is known for tool the tool rule values that a
// successful decision left in its cache, vc, outside any `with`.
func (c *toolCache) learn(tool ast.Value, known staticValues, vc topdown.VirtualCache) {
	if c == nil || tool == nil {
		return
	}
	var learned staticValues
	for _, ref := range c.refs {
		if _, ok := known.get(ref); ok {
			continue
		}
		value, undefined := vc.Get(ref)
		if value == nil && !undefined {
			continue // not evaluated by this decision
		}
		if learned == nil {
			learned = maps.Clone(known)
			if learned == nil {
				learned = staticValues{}
			}
		}
		name := string(ref[len(ref)-1].Value.(ast.String))
		learned[name] = append(learned[name][:len(learned[name]):len(learned[name])], staticValue{ref: ref, value: value, undefined: undefined})
	}
	if learned == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.byTool) >= toolCacheSize {
		clear(c.byTool)
	}
	c.byTool[tool] = learned
}

// complete reports whether values holds every tool rule.
func (c *toolCache) complete(values staticValues) bool {
	n := 0
	for _, vs := range values {
		n += len(vs)
	}
	return n >= len(c.refs)
}
