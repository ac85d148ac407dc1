package policy

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// staticPolicy has rules of every kind the analysis must tell apart.
const staticPolicy = `package agenthelm.authz

decision := {
	"allow": allowed,
	"reasons": [concat(",", sort(facts))],
	"labels": {"limit": sprintf("%v", [overridden])},
}

default allowed := false

allowed if input.tool.name in names

# Static: data only, through another static rule and a function.
names := {n | some n in settings.names}

settings := data.settings

table := {k: double(v) | some k, v in data.settings.numbers}

double(x) := x * 2

with_else := "big" if {
	table.a > 10
} else := "small"

default with_default := "none"

with_default := data.settings.maybe

facts contains sprintf("names=%d", [count(names)])

facts contains sprintf("table=%v", [table])

facts contains sprintf("else=%s", [with_else])

facts contains sprintf("default=%s", [with_default])

facts contains sprintf("now=%v", [is_number(clock)])

facts contains sprintf("tool=%s", [tool_upper])

facts contains sprintf("fn=%s", [via_function])

facts contains sprintf("printed=%v", [printed])

# Not static: input, directly or through a function; a non-deterministic
# built-in; print; with.
tool_upper := upper(input.tool.name)

via_function := shout(data.settings.word)

shout(w) := concat("", [w, input.tool.upstream])

clock := time.now_ns()

printed := true if {
	print("evaluated")
}

overridden := x if {
	x := limit with data.settings.limit as 99
}

limit := data.settings.limit

# Not reachable from decision: never evaluated at load.
unused := data.settings.numbers.a
`

const staticData = `{"settings": {"names": ["read", "list"], "numbers": {"a": 7, "b": 1}, "word": "hi", "limit": 5}}`

func TestStaticRules(t *testing.T) {
	dir := policyDir(t, map[string]string{"authz.rego": staticPolicy, "data.json": staticData})
	e := newEngine(t, Options{Dir: dir})
	rev := e.cur.Load()

	var got []string
	for _, p := range staticRules(rev.compiler, decisionRef) {
		got = append(got, strings.TrimPrefix(p.String(), "data.agenthelm.authz."))
	}
	slices.Sort(got)
	want := []string{"limit", "names", "settings", "table", "with_default", "with_else"}
	if !slices.Equal(got, want) {
		t.Errorf("static rules = %v, want %v", got, want)
	}
	if len(rev.static) == 0 {
		t.Fatal("no static values were computed")
	}

	// The decision is the same with the static values as without them.
	in := NewInput(mcpCall("files", "read", `{}`), pivot, agent, sagaWith(), now)
	v, err := in.Value()
	if err != nil {
		t.Fatal(err)
	}
	with := rev.evalValue(context.Background(), v, now, time.Now())
	plain := *rev
	plain.static = nil
	without := plain.evalValue(context.Background(), v, now, time.Now())
	if with.Err != nil || string(with.Raw) != string(without.Raw) {
		t.Fatalf("with static values: %s %v\nwithout: %s %v", with.Raw, with.Err, without.Raw, without.Err)
	}
	for _, want := range []string{"names=2", `table={"a": 14, "b": 2}`, "else=big", "default=none", "now=true", "tool=READ", "fn=hifiles", "printed=true"} {
		if !strings.Contains(with.Reasons[0], want) {
			t.Errorf("reasons %q lack %q", with.Reasons, want)
		}
	}
	if !with.Allow {
		t.Errorf("read is in the static names, decision = %s", with.Raw)
	}
	// `with data...` inside a rule sees the replaced data, not the value
	// computed once.
	if with.Labels["limit"] != "99" {
		t.Errorf("labels = %v, want limit 99 (the value under with)", with.Labels)
	}
}

func TestStaticRuleErrorsAreLeftToDecisions(t *testing.T) {
	// A static rule that fails when the revision is built still fails each
	// decision, as it did before rules were computed once.
	dir := policyDir(t, map[string]string{"authz.rego": `package agenthelm.authz

default decision := {"allow": false}

decision := {"allow": limit > 0} if input.tool.name == "read"

limit := to_number(data.settings.limit)
`, "data.json": `{"settings": {"limit": "lots"}}`})
	e := newEngine(t, Options{Dir: dir})
	if n := len(e.cur.Load().static); n != 0 {
		t.Errorf("%d static values, want none: limit fails", n)
	}
	d := e.Decide(context.Background(), NewInput(mcpCall("files", "read", `{}`), pivot, agent, sagaWith(), now))
	if !errors.Is(d.Err, ErrEvaluation) || !strings.Contains(d.Reasons[0], "to_number") {
		t.Errorf("Decide = %s %v, want a to_number evaluation error", d.Verdict(), d.Err)
	}
}

func TestStaticValuesOfTheShippedPolicies(t *testing.T) {
	e := newEngine(t, Options{Dir: shipped})
	rev := e.cur.Load()
	for _, name := range []string{"tool_index", "tool_profiles", "root_prefixes", "amount_arguments"} {
		if len(rev.static[name]) != 1 || rev.static[name][0].value == nil {
			t.Errorf("%s is not computed once per revision: %v", name, rev.static[name])
		}
	}
	var tool []string
	for _, ref := range rev.tools.refs {
		tool = append(tool, strings.TrimPrefix(ref.String(), "data.agenthelm.authz."))
	}
	for _, name := range []string{"profile", "tool_id", "irreversible_because", "exempt_because"} {
		if !slices.Contains(tool, name) {
			t.Errorf("%s is not computed once per tool (tool rules: %v)", name, tool)
		}
	}
	for _, name := range []string{"profile", "tool_id", "spent", "saga_total", "decision"} {
		if len(rev.static[name]) != 0 {
			t.Errorf("%s depends on input but was computed once", name)
		}
	}
	for _, name := range []string{"spent", "saga_total", "charge", "decision"} {
		if slices.Contains(tool, name) {
			t.Errorf("%s depends on more than the tool but is computed once per tool", name)
		}
	}
}
