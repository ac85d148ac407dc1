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
//
// The same analysis finds the tool rules, whose value depends on data and
// input.tool only: toolcache.go keeps their values per tool.

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
	return s.lookup(string(name), ref)
}

// lookup is get for a ref whose last element is name.
func (s staticValues) lookup(name string, ref ast.Ref) (staticValue, bool) {
	for _, v := range s[name] {
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

// ruleClass says what a rule's value depends on.
type ruleClass int

const (
	classStatic  ruleClass = iota // data only: the same for every call of a revision
	classTool                     // data and input.tool: the same for every call of a tool
	classDynamic                  // anything else
)

// toolRoot is the key of input.tool.
var toolRoot = ast.StringTerm("tool")

// staticRules returns the paths of the static complete rules the rules at
// from depend on, directly or not.
func staticRules(c *ast.Compiler, from ast.Ref) []ast.Ref {
	static, _ := cacheableRules(c, from)
	return static
}

// cacheableRules returns the paths of the complete rules without arguments
// that the rules at from depend on, directly or not, and whose value
// depends on data only (static) or on data and input.tool only (tool).
func cacheableRules(c *ast.Compiler, from ast.Ref) (static, tool []ast.Ref) {
	// What each rule depends on by itself, then through the rules and
	// functions it uses: a rule is at least of the class of everything it
	// depends on.
	class := map[*ast.Rule]ruleClass{}
	var dynamic, toolOnly []*ast.Rule
	for _, m := range c.Modules {
		ast.WalkRules(m, func(r *ast.Rule) bool {
			switch selfClass(r) {
			case classDynamic:
				dynamic = append(dynamic, r)
			case classTool:
				toolOnly = append(toolOnly, r)
			}
			return false
		})
	}
	raise := func(from []*ast.Rule, to ruleClass) {
		for len(from) > 0 {
			r := from[len(from)-1]
			from = from[:len(from)-1]
			if class[r] >= to {
				continue
			}
			class[r] = to
			for d := range c.Graph.Dependents(r) {
				if dr, ok := d.(*ast.Rule); ok && class[dr] < to {
					from = append(from, dr)
				}
			}
		}
	}
	raise(dynamic, classDynamic)
	raise(toolOnly, classTool)

	// A rule set is one value: its class is the highest of all the rules
	// that define its path, else branches and default included. top counts
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
		if _, ok := path[len(path)-1].Value.(ast.String); !ok {
			continue // values are kept by the rule's name (see staticValues)
		}
		key := path.String()
		if done[key] {
			continue
		}
		done[key] = true
		pathClass := classStatic
		for _, rr := range byPath[key] {
			if len(rr.Head.Args) > 0 || rr.Head.RuleKind() != ast.SingleValue {
				pathClass = classDynamic
				break
			}
			pathClass = max(pathClass, class[rr])
		}
		// A rule below or above this path would make it a different document.
		if len(c.GetRulesWithPrefix(path)) != top[key] {
			pathClass = classDynamic
		}
		switch pathClass {
		case classStatic:
			static = append(static, path)
		case classTool:
			tool = append(tool, path)
		}
	}
	return static, tool
}

// selfClass tells what r reads by itself: nothing but data (static),
// input.tool (tool), or anything else of the input, a `with`, or a built-in
// whose result or effect belongs to each evaluation (dynamic). (The rules
// and functions it refers to are accounted for through the dependency
// graph.)
func selfClass(r *ast.Rule) ruleClass {
	class := classStatic
	var visit func(t *ast.Term) bool
	visit = func(t *ast.Term) bool {
		switch v := t.Value.(type) {
		case ast.Ref:
			if v.HasPrefix(ast.InputRootRef) {
				if len(v) < 2 || !v[1].Equal(toolRoot) {
					class = classDynamic
					return true
				}
				class = max(class, classTool)
				for _, x := range v[2:] { // input.tool[k]: what k reads counts too
					ast.WalkTerms(x, visit)
				}
				return true
			}
		case ast.Call:
			if len(v) > 0 && !builtinIsStatic(v[0].String()) {
				class = classDynamic
			}
		case ast.Var:
			if v.Equal(ast.InputRootDocument.Value) {
				class = classDynamic
			}
		}
		return class == classDynamic
	}
	for rule := r; rule != nil && class != classDynamic; rule = rule.Else {
		ast.WalkExprs(rule, func(e *ast.Expr) bool {
			if len(e.With) > 0 {
				class = classDynamic
			}
			if e.IsCall() {
				if name := e.Operator().String(); !builtinIsStatic(name) {
					class = classDynamic
				}
			}
			return class == classDynamic
		})
		if class != classDynamic {
			ast.WalkTerms(rule, visit)
		}
	}
	return class
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
