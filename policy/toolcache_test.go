package policy

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// toolPolicy has rules of every kind the analysis must tell apart.
const toolPolicy = `package agenthelm.authz

decision := {
	"allow": allowed,
	"reasons": [reason],
	"labels": {"kind": kind, "shadowed": shadowed, "fn": via_function},
}

default allowed := false

# Tool rules: they read input.tool and data, directly or through static
# rules, other tool rules and functions.
allowed if upper_name in names

upper_name := upper(input.tool.name)

kind := "files" if {
	input.tool.upstream == "files"
} else := "other"

names := {"READ", "LIST"}

# Not tool rules: other input, directly or through a function; with.
reason := sprintf("%s with %d arguments", [upper_name, count(input.arguments)])

via_function := shout(input.tool.name)

shout(x) := concat("", [x, input.agent.id])

shadowed := x if {
	x := upper_name with input.tool.name as "other"
}
`

func TestToolRules(t *testing.T) {
	dir := policyDir(t, map[string]string{"authz.rego": toolPolicy})
	e := newEngine(t, Options{Dir: dir})
	rev := e.cur.Load()

	static, tool := cacheableRules(rev.compiler, decisionRef)
	names := func(refs []string) []string {
		slices.Sort(refs)
		return refs
	}
	var gotStatic, gotTool []string
	for _, p := range static {
		gotStatic = append(gotStatic, strings.TrimPrefix(p.String(), "data.agenthelm.authz."))
	}
	for _, p := range tool {
		gotTool = append(gotTool, strings.TrimPrefix(p.String(), "data.agenthelm.authz."))
	}
	if want := []string{"names"}; !slices.Equal(names(gotStatic), want) {
		t.Errorf("static rules = %v, want %v", gotStatic, want)
	}
	if want := []string{"allowed", "kind", "upper_name"}; !slices.Equal(names(gotTool), want) {
		t.Errorf("tool rules = %v, want %v", gotTool, want)
	}

	// Decisions for several tools, in turns, are those computed without
	// any cached value, and the values are learned once per tool.
	plain := *rev
	plain.static, plain.tools = nil, nil
	calls := []Input{
		NewInput(mcpCall("files", "read", `{"a":1}`), readOnly, agent, sagaWith(), now),
		NewInput(mcpCall("files", "delete", `{}`), pivot, agent, sagaWith(), now),
		NewInput(mcpCall("web", "list", `{"a":1,"b":2}`), readOnly, AgentInfo{ID: "other-bot"}, sagaWith(), now),
	}
	for round := range 3 {
		for _, in := range calls {
			got := e.Decide(context.Background(), in)
			v, err := in.Value()
			if err != nil {
				t.Fatal(err)
			}
			want := plain.evalValue(context.Background(), v, now, time.Now())
			if got.Err != nil || string(got.Raw) != string(want.Raw) {
				t.Errorf("round %d, %s: Decide = %s %v, want %s %v", round, in.Tool.Name, got.Raw, got.Err, want.Raw, want.Err)
			}
		}
	}
	rev.tools.mu.Lock()
	defer rev.tools.mu.Unlock()
	if n := len(rev.tools.byTool); n != len(calls) {
		t.Errorf("values are kept for %d tools, want %d", n, len(calls))
	}
	for _, values := range rev.tools.byTool {
		if !rev.tools.complete(values) {
			t.Errorf("tool values %v lack some of %v", values, rev.tools.refs)
		}
	}
}

func TestToolRuleErrorsAreNotKept(t *testing.T) {
	// A tool rule that fails makes every decision for that tool fail, not
	// only the first.
	dir := policyDir(t, map[string]string{"authz.rego": `package agenthelm.authz

default decision := {"allow": false}

decision := {"allow": limit > 0}

limit := to_number(input.tool.name)
`})
	e := newEngine(t, Options{Dir: dir})
	in := NewInput(mcpCall("files", "read", `{}`), pivot, agent, sagaWith(), now)
	for range 3 {
		if d := e.Decide(context.Background(), in); d.Err == nil {
			t.Fatalf("Decide = %s, want a to_number evaluation error", d.Raw)
		}
	}
	if n := len(e.cur.Load().tools.byTool); n != 0 {
		t.Errorf("values kept for %d tools after failed decisions", n)
	}
	ok := NewInput(mcpCall("files", "7", `{}`), pivot, agent, sagaWith(), now)
	for range 2 {
		if d := e.Decide(context.Background(), ok); d.Err != nil || !d.Allow {
			t.Fatalf("Decide(tool 7) = %s %v, want allow", d.Raw, d.Err)
		}
	}
}
