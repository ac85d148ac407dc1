package policy

import (
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// decisionCache is the virtual-document cache of one decision. It starts out
// knowing the revision's static rule values (static.go) and those of the
// tool rules for the called tool (toolcache.go). Inside a `with` (a frame
// pushed), input, data or functions may be replaced, so these values are
// not used there.
//
// OPA's own cache (topdown.NewVirtualCache) is a tree keyed by each
// element of a ref, hashed on every lookup. Most keys are rule paths such as
// data.agenthelm.authz.profile, which a decision looks up several times
// each, so they are kept in a map by their last element, as staticValues
// are; other keys (function calls with their arguments) go to OPA's cache.
type decisionCache struct {
	static staticValues
	tool   staticValues
	frames []staticValues // rule values computed by this decision, one map per frame
	inner  topdown.VirtualCache
}

func newDecisionCache(static, tool staticValues) *decisionCache {
	return &decisionCache{static: static, tool: tool, frames: []staticValues{{}}, inner: topdown.NewVirtualCache()}
}

// rulePath returns the last element of ref if ref is the path of a rule:
// data followed by names.
func rulePath(ref ast.Ref) (string, bool) {
	if len(ref) < 2 || !ref[0].Equal(ast.DefaultRootDocument) {
		return "", false
	}
	name, ok := ref[len(ref)-1].Value.(ast.String)
	return string(name), ok
}

func (c *decisionCache) Push() {
	c.frames = append(c.frames, staticValues{})
	c.inner.Push()
}

func (c *decisionCache) Pop() {
	c.frames = c.frames[:len(c.frames)-1]
	c.inner.Pop()
}

// Get returns the value of ref: nil, true if it is undefined; nil, false if
// it is not known.
func (c *decisionCache) Get(ref ast.Ref) (*ast.Term, bool) {
	name, ok := rulePath(ref)
	if !ok {
		return c.inner.Get(ref)
	}
	if len(c.frames) == 1 {
		if v, ok := c.static.lookup(name, ref); ok {
			return v.value, v.undefined
		}
		if v, ok := c.tool.lookup(name, ref); ok {
			return v.value, v.undefined
		}
	}
	if v, ok := c.frames[len(c.frames)-1].lookup(name, ref); ok {
		return v.value, v.undefined
	}
	return nil, false
}

// Put records the value of ref, nil if it is undefined.
func (c *decisionCache) Put(ref ast.Ref, value *ast.Term) {
	name, ok := rulePath(ref)
	if !ok {
		c.inner.Put(ref, value)
		return
	}
	frame := c.frames[len(c.frames)-1]
	for i, v := range frame[name] {
		if v.ref.Equal(ref) {
			frame[name][i] = staticValue{ref: v.ref, value: value, undefined: value == nil}
			return
		}
	}
	// OPA may reuse ref's array for the next key: keep a copy.
	frame[name] = append(frame[name], staticValue{ref: slices.Clone(ref), value: value, undefined: value == nil})
}

// Keys lists the refs with a value in the current frame.
func (c *decisionCache) Keys() []ast.Ref {
	keys := c.inner.Keys()
	for _, vs := range c.frames[len(c.frames)-1] {
		for _, v := range vs {
			if v.value != nil {
				keys = append(keys, v.ref)
			}
		}
	}
	return keys
}

var _ topdown.VirtualCache = (*decisionCache)(nil)
