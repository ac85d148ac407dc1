package policy

import (
	"cmp"
	"encoding/json"
	"regexp"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// input.saga.amounts adds up the amounts in the arguments of the saga's
// earlier steps, by tool, status and argument, so that a budget reads a
// few totals instead of going through every earlier step on every call (a
// saga can have 128 steps in the input, and each step evaluated in Rego
// costs about a microsecond). Each step is looked at once: its amounts are
// kept with its value in the step cache.
//
// An amount is what the shipped policies' number_of() accepts, greater than
// zero: a JSON number, or a string holding one ("12.50"). Values are read
// and added up with OPA's own built-ins (to_number, sum), so a total is the
// number sum() in a policy would compute. A numeric string that to_number
// rejects (beyond the range of a float64, such as "1e400") is not dropped:
// its total is the string itself, so that a policy adding it up fails
// closed, as one reading the step would.

// AmountTotal is one entry of input.saga.amounts: what the earlier steps of
// one tool with one status hold in one top-level argument, added up.
type AmountTotal struct {
	Upstream string `json:"upstream"`
	Tool     string `json:"tool"`
	Status   string `json:"status"`
	Argument string `json:"argument"`
	// Total is the sum of the amounts, a number (json.Number); or, if one
	// of them is a numeric string too large to read, that string.
	Total any `json:"total"`
}

// amountPattern is what number_of() in policies/authz.rego accepts as a
// numeric string. Keep the two in step.
var amountPattern = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$`)

var (
	builtinToNumber = topdown.GetBuiltin(ast.ToNumber.Name)
	builtinSum      = topdown.GetBuiltin(ast.Sum.Name)
	zero            = ast.Number("0")
)

// stepAmount is an amount in one step's arguments.
type stepAmount struct {
	arg   string
	value *ast.Term // a positive number, or the string to_number rejected
}

// amountsOf returns the amounts among the top-level arguments of a step,
// in the order of their names.
func amountsOf(args ast.Value) []stepAmount {
	obj, ok := args.(ast.Object)
	if !ok {
		return nil
	}
	var out []stepAmount
	obj.Foreach(func(k, v *ast.Term) {
		name, ok := k.Value.(ast.String)
		if !ok {
			return
		}
		switch x := v.Value.(type) {
		case ast.Number:
			if x.Compare(zero) > 0 {
				out = append(out, stepAmount{string(name), v})
			}
		case ast.String:
			if !amountPattern.MatchString(string(x)) {
				return
			}
			n, err := call1(builtinToNumber, v)
			if err != nil {
				out = append(out, stepAmount{string(name), v}) // unreadable: kept, see above
			} else if n.Value.Compare(zero) > 0 {
				out = append(out, stepAmount{string(name), n})
			}
		}
	})
	return out
}

// call1 calls a built-in of one argument that needs no context.
func call1(fn topdown.BuiltinFunc, arg *ast.Term) (*ast.Term, error) {
	var out *ast.Term
	err := fn(topdown.BuiltinContext{}, []*ast.Term{arg}, func(t *ast.Term) error { out = t; return nil })
	return out, err
}

// amountGroup collects the amounts of one tool, status and argument.
type amountGroup struct {
	upstream, tool, status, arg string
	values                      []*ast.Term
}

// groupAmounts adds up the amounts of steps (amounts[i] are those of
// steps[i]) into saga.amounts, ordered by upstream, tool, status and
// argument.
func groupAmounts(steps []StepSummary, amounts [][]stepAmount) []amountGroup {
	var groups []amountGroup
	if !slices.ContainsFunc(amounts, func(as []stepAmount) bool { return len(as) > 0 }) {
		return nil
	}
	for i, as := range amounts {
		s := &steps[i]
	next:
		for _, a := range as {
			for g := range groups {
				if gr := &groups[g]; gr.arg == a.arg && gr.tool == s.Tool && gr.upstream == s.Upstream && gr.status == s.Status {
					gr.values = append(gr.values, a.value)
					continue next
				}
			}
			groups = append(groups, amountGroup{upstream: s.Upstream, tool: s.Tool, status: s.Status, arg: a.arg, values: []*ast.Term{a.value}})
		}
	}
	slices.SortFunc(groups, func(a, b amountGroup) int {
		return cmp.Or(cmp.Compare(a.upstream, b.upstream), cmp.Compare(a.tool, b.tool), cmp.Compare(a.status, b.status), cmp.Compare(a.arg, b.arg))
	})
	return groups
}

// total adds up a group's amounts as sum() does; an unreadable string is
// the total.
func (g *amountGroup) total() *ast.Term {
	for _, v := range g.values {
		if _, ok := v.Value.(ast.String); ok {
			return v
		}
	}
	t, err := call1(builtinSum, ast.ArrayTerm(g.values...))
	if err != nil { // not for positive numbers; keep failing closed if it ever were
		return ast.StringTerm(err.Error())
	}
	return t
}

// noAmounts is the saga.amounts of most sagas. AST values are never
// changed once built, so inputs share it.
var noAmounts = ast.NewArray()

// amountsValue is saga.amounts as an AST value, with the entries that
// parts has seen before (nil: none) reused.
func amountsValue(groups []amountGroup, parts *partCache) ast.Value {
	if len(groups) == 0 {
		return noAmounts
	}
	terms := make([]*ast.Term, len(groups))
	for i := range groups {
		terms[i] = parts.amount(&groups[i])
	}
	return ast.NewArray(terms...)
}

// amountTerm builds one entry of saga.amounts.
func amountTerm(g *amountGroup) *ast.Term {
	return ast.ObjectTerm(
		item("upstream", ast.String(g.upstream)),
		item("tool", ast.String(g.tool)),
		item("status", ast.String(g.status)),
		item("argument", ast.String(g.arg)),
		[2]*ast.Term{keyTerms["total"], g.total()},
	)
}

// AmountTotals adds up the amounts in the arguments of steps, as agenthelm
// does for input.saga.amounts. Steps whose arguments are not valid JSON
// hold no amounts.
func AmountTotals(steps []StepSummary) []AmountTotal {
	amounts := make([][]stepAmount, len(steps))
	for i := range steps {
		if args, err := jsonValue(steps[i].Arguments); err == nil {
			amounts[i] = amountsOf(args)
		}
	}
	groups := groupAmounts(steps, amounts)
	out := make([]AmountTotal, len(groups))
	for i := range groups {
		out[i] = groups[i].entry()
	}
	return out
}

// entry is the group as an entry of input.saga.amounts.
func (g *amountGroup) entry() AmountTotal {
	e := AmountTotal{Upstream: g.upstream, Tool: g.tool, Status: g.status, Argument: g.arg}
	switch t := g.total().Value.(type) {
	case ast.Number:
		e.Total = json.Number(t)
	case ast.String:
		e.Total = string(t)
	}
	return e
}

// StepAmounts are the amounts among one step's top-level arguments, read
// once: a saga engine keeps them with the step and adds up the whole
// saga's with SumAmounts on every call, which the input's step list (the
// latest steps only) could not do.
type StepAmounts []stepAmount

// AmountsIn reads the amounts among the top-level arguments args (none if
// args is not a JSON object).
func AmountsIn(args json.RawMessage) StepAmounts {
	v, err := jsonValue(args)
	if err != nil {
		return nil
	}
	return amountsOf(v)
}

// SumAmounts adds up amounts[i], the amounts of steps[i], into the entries
// of input.saga.amounts. Only the steps' Upstream, Tool and Status are
// read. The result is never nil, so that NewInput and the input conversion
// take it as given instead of summing the listed steps only.
func SumAmounts(steps []StepSummary, amounts []StepAmounts) []AmountTotal {
	raw := make([][]stepAmount, len(amounts))
	for i, a := range amounts {
		raw[i] = a
	}
	groups := groupAmounts(steps, raw)
	out := make([]AmountTotal, len(groups))
	for i := range groups {
		out[i] = groups[i].entry()
	}
	return out
}
