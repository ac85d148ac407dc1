package policy

import (
	"context"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// Rules that depend only on data (settings, and what a policy derives from
// them: lookup tables, sets of names, compiled prefixes) have the same value
// for every call of a revision, yet OPA evaluates them again in every query:
// it caches rule values within one evaluation only. A revision therefore
// evaluates them once, when it is built, and every decision starts with
// their values in its virtual-document cache (staticValues, decisionCache).
//
// A rule is static if it is a complete rule without arguments, its own
// bodies and head read no input, call no non-deterministic built-in (such as
// time.now_ns, http.send or rand.intn) and no print, trace or
// rego.metadata built-in, use no `with`, and every rule or function it
// depends on is static too. Only static rules that the decision can reach
// are evaluated. A static rule whose evaluation fails when the revision is
// built is left to each decision, which then fails as it would have.
//
// The values are exactly those each decision would compute, so decisions do
// not change; tests and `opa test` compute them per query, as before.

// staticBudget bounds the time a revision spends evaluating static rules;
// rules not reached in time are left to each decision.
const staticBudget = 2 * time.Second

// staticValue is the value of a static rule, or its being undefined.
type staticValue struct {
	ref       ast.Ref
	value     *ast.Term // nil: undefined
	undefined bool
}

// staticValues are a revision's static rule values, by the rule's last path
// element (a cheap key for a lookup made for every rule a decision reads).
type staticValues map[string][]staticValue

func (s staticValues) get(ref ast.Ref) (staticValue, bool) {
	if len(ref) == 0 {
		return staticValue{}, false
	}
	name, ok := ref[len(ref)-1].Value.(ast.String)
	if !ok {
		return staticValue{}, false
	}
	for _, v := range s[string(name)] {
		if v.ref.Equal(ref) {
			return v, true
		}
	}
	return staticValue{}, false
}

// nonStaticBuiltins are deterministic built-ins whose effect or result
// still belongs to each evaluation.
var nonStaticBuiltins = map[string]bool{
	ast.Print.Name:                  true,
	ast.InternalPrint.Name:          true,
	ast.Trace.Name:                  true,
	ast.RegoMetadataChain.Name:      true,
	ast.RegoMetadataRule.Name:       true,
	ast.InternalTestCase.Name:       true,
	ast.OPARuntime.Name:             true,
	ast.InternalTemplateString.Name: true,
}

// staticRules returns the paths of the static complete rules the rules at
// from depend on, directly or not.
func staticRules(c *ast.Compiler, from ast.Ref) []ast.Ref {
	// Rules that are not static by themselves.
	var tainted []*ast.Rule
	for _, m := range c.Modules {
		ast.WalkRules(m, func(r *ast.Rule) bool {
			if !selfStatic(r) {
				tainted = append(tainted, r)
			}
			return false
		})
	}

	// Whatever depends on a tainted rule is not static either.
	dynamic := map[*ast.Rule]bool{}
	for len(tainted) > 0 {
		r := tainted[len(tainted)-1]
		tainted = tainted[:len(tainted)-1]
		if dynamic[r] {
			continue
		}
		dynamic[r] = true
		for d := range c.Graph.Dependents(r) {
			if dr, ok := d.(*ast.Rule); ok && !dynamic[dr] {
				tainted = append(tainted, dr)
			}
		}
	}
	// A rule set is one value: a rule is static only if all the rules that
	// define its path are, else branches and default included. top counts
	// the rules at a path as the compiler's rule tree lists them (without
	// else branches).
	byPath := map[string][]*ast.Rule{}
	top := map[string]int{}
	for _, m := range c.Modules {
		for _, r := range m.Rules {
			if len(r.Head.Args) > 0 {
				continue
			}
			p := r.Ref().String()
			top[p]++
			for e := r; e != nil; e = e.Else {
				byPath[p] = append(byPath[p], e)
			}
		}
	}

	// What the decision reaches.
	seen := map[*ast.Rule]bool{}
	stack := append([]*ast.Rule(nil), c.GetRulesForVirtualDocument(from)...)
	var out []ast.Ref
	done := map[string]bool{}
	for len(stack) > 0 {
		r := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[r] {
			continue
		}
		seen[r] = true
		if r.Else != nil { // an else branch is a node of its own
			stack = append(stack, r.Else)
		}
		for d := range c.Graph.Dependencies(r) {
			if dr, ok := d.(*ast.Rule); ok && !seen[dr] {
				stack = append(stack, dr)
			}
		}
		if len(r.Head.Args) > 0 || r.Head.RuleKind() != ast.SingleValue || !r.Head.Ref().IsGround() {
			continue
		}
		path := r.Ref()
		key := path.String()
		if done[key] {
			continue
		}
		done[key] = true
		static := true
		for _, rr := range byPath[key] {
			if dynamic[rr] || len(rr.Head.Args) > 0 || rr.Head.RuleKind() != ast.SingleValue {
				static = false
				break
			}
		}
		// A rule below or above this path would make it a different document.
		if static && len(c.GetRulesWithPrefix(path)) != top[key] {
			static = false
		}
		if static {
			out = append(out, path)
		}
	}
	return out
}

// selfStatic reports whether r, by itself, reads no input, uses no `with`
// and calls no built-in whose result or effect belongs to each evaluation.
// (The rules and functions it refers to are checked through the dependency
// graph.)
func selfStatic(r *ast.Rule) bool {
	static := true
	for rule := r; rule != nil && static; rule = rule.Else {
		ast.WalkExprs(rule, func(e *ast.Expr) bool {
			if len(e.With) > 0 {
				static = false
			}
			if e.IsCall() {
				if name := e.Operator().String(); !builtinIsStatic(name) {
					static = false
				}
			}
			return !static
		})
		ast.WalkTerms(rule, func(t *ast.Term) bool {
			switch v := t.Value.(type) {
			case ast.Ref:
				if v.HasPrefix(ast.InputRootRef) {
					static = false
				}
			case ast.Call:
				if len(v) > 0 && !builtinIsStatic(v[0].String()) {
					static = false
				}
			case ast.Var:
				if v.Equal(ast.InputRootDocument.Value) {
					static = false
				}
			}
			return !static
		})
	}
	return static
}

// builtinIsStatic reports whether a call of name (a built-in, or a user
// function, whose body the dependency graph covers) can be made once per
// revision.
func builtinIsStatic(name string) bool {
	b, ok := ast.BuiltinMap[name]
	if !ok {
		// A user function (data....): its rules are dependencies. Anything
		// else (a custom built-in) is evaluated per decision.
		return strings.HasPrefix(name, "data.")
	}
	return !b.Nondeterministic && !nonStaticBuiltins[name]
}

// evalStatic evaluates the static rules at paths with the revision's data
// and no input.
func evalStatic(ctx context.Context, c *ast.Compiler, store storage.Store, paths []ast.Ref) staticValues {
	if len(paths) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, staticBudget)
	defer cancel()
	vc := topdown.NewVirtualCache() // shared: a rule's dependencies are evaluated once
	out := staticValues{}
	for _, path := range paths {
		if ctx.Err() != nil {
			break
		}
		pq, err := rego.New(
			rego.ParsedQuery(ast.NewBody(ast.NewExpr(ast.NewTerm(path)))),
			rego.Compiler(c),
			rego.Store(store),
			rego.StrictBuiltinErrors(true),
		).PrepareForEval(ctx)
		if err != nil {
			continue
		}
		rs, err := pq.Eval(ctx, decisionTerm, rego.EvalVirtualCache(vc))
		if err != nil {
			continue // left to each decision, which fails as it would have
		}
		v := staticValue{ref: path}
		if len(rs) == 0 || len(rs[0].Expressions) == 0 {
			v.undefined = true
		} else if t, ok := rs[0].Expressions[0].Value.(*ast.Term); ok {
			v.value = t
		} else {
			continue
		}
		name := string(path[len(path)-1].Value.(ast.String))
		out[name] = append(out[name], v)
	}
	return out
}

// decisionCache is the virtual-document cache of one decision: OPA's own,
// which starts out knowing the revision's static rule values. Inside a
// `with` (a frame pushed), data or functions may be replaced, so the static
// values are not used there.
type decisionCache struct {
	static staticValues
	inner  topdown.VirtualCache
	depth  int
}

func newDecisionCache(static staticValues) *decisionCache {
	return &decisionCache{static: static, inner: topdown.NewVirtualCache()}
}

func (c *decisionCache) Push() { c.depth++; c.inner.Push() }

func (c *decisionCache) Pop() { c.depth--; c.inner.Pop() }

func (c *decisionCache) Get(ref ast.Ref) (*ast.Term, bool) {
	if c.depth == 0 {
		if v, ok := c.static.get(ref); ok {
			return v.value, v.undefined
		}
	}
	return c.inner.Get(ref)
}

func (c *decisionCache) Put(ref ast.Ref, value *ast.Term) { c.inner.Put(ref, value) }

func (c *decisionCache) Keys() []ast.Ref { return c.inner.Keys() }

var _ topdown.VirtualCache = (*decisionCache)(nil)
