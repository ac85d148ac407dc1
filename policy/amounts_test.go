package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

func TestAmountTotals(t *testing.T) {
	step := func(tool, status, args string) StepSummary {
		return NewStepSummary(tool, "payments", status, json.RawMessage(args), now)
	}
	total := func(tool, status, arg string, t any) AmountTotal {
		return AmountTotal{Upstream: "payments", Tool: tool, Status: status, Argument: arg, Total: t}
	}
	tests := []struct {
		name  string
		steps []StepSummary
		want  []AmountTotal
	}{
		{"none", nil, []AmountTotal{}},
		{"no amounts", []StepSummary{step("get", StepSucceeded, `{"id":"x","n":0,"neg":-3,"obj":{"amount":5},"list":[5]}`)}, []AmountTotal{}},
		{"added up as sum() does", []StepSummary{
			step("pay", StepSucceeded, `{"amount":120.5}`), step("pay", StepSucceeded, `{"amount":120.5}`),
			step("pay", StepPending, `{"amount":"12.50"}`), step("pay", StepPending, `{"amount":"7"}`),
		}, []AmountTotal{
			total("pay", StepPending, "amount", json.Number("19.5")),
			total("pay", StepSucceeded, "amount", json.Number("241")),
		}},
		{"by tool, status and argument, in that order", []StepSummary{
			step("zz", StepFailed, `{"b":2,"a":1}`), step("aa", StepSucceeded, `{"fee":3}`), step("zz", StepDenied, `{"b":4}`),
		}, []AmountTotal{
			total("aa", StepSucceeded, "fee", json.Number("3")),
			total("zz", StepDenied, "b", json.Number("4")),
			total("zz", StepFailed, "a", json.Number("1")),
			total("zz", StepFailed, "b", json.Number("2")),
		}},
		{"exact numbers", []StepSummary{step("pay", StepSucceeded, `{"amount":123456789012345678901234567890}`), step("pay", StepSucceeded, `{"amount":10}`)},
			[]AmountTotal{total("pay", StepSucceeded, "amount", json.Number("123456789012345678901234567900"))}},
		{"tiny amounts count", []StepSummary{step("pay", StepPending, `{"amount":1e-400}`)},
			[]AmountTotal{total("pay", StepPending, "amount", json.Number("1e-400"))}},
		{"not amounts", []StepSummary{step("pay", StepSucceeded, `{"a":"12 EUR","b":"-5","c":"0.00","d":true,"e":null,"f":"1e400x"}`)}, []AmountTotal{}},
		{"unreadable amount fails closed", []StepSummary{step("pay", StepSucceeded, `{"amount":"1e400"}`), step("pay", StepSucceeded, `{"amount":3}`)},
			[]AmountTotal{total("pay", StepSucceeded, "amount", "1e400")}},
		{"arguments that are not an object", []StepSummary{step("pay", StepSucceeded, `[1,2]`), step("pay", StepSucceeded, ``), step("pay", StepSucceeded, `{`)}, []AmountTotal{}},
	}
	for _, tt := range tests {
		got := AmountTotals(tt.steps)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: AmountTotals (-want +got):\n%s", tt.name, diff)
		}
	}
}

// saga.amounts is built three ways: from the step cache (Decide), from the
// steps' JSON (MarshalJSON, Value), and by the shipped tests' Rego helper
// saga_amounts, which builds the inputs of the budget tests. All agree.
func TestAmountsMatchTheRegoHelper(t *testing.T) {
	pq := shippedQuery(t, "x := data.agenthelm.authz_test.saga_amounts(input)")

	r := rand.New(rand.NewPCG(1, 2))
	values := []string{`5`, `120.5`, `"12.50"`, `"7"`, `-3`, `0`, `"x"`, `true`, `null`, `1e2`, `"2.5e1"`, `{"amount":1}`, `[1]`, `0.1`, `0.2`}
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	cache, parts := newStepCache(64), newPartCache()
	for i := range 300 {
		var steps []StepSummary
		for range r.IntN(8) {
			var args []string
			for _, name := range []string{"amount", "fee", "id"} {
				if r.IntN(2) == 0 {
					args = append(args, fmt.Sprintf("%q:%s", name, pick(values...)))
				}
			}
			steps = append(steps, NewStepSummary(pick("pay", "refund"), pick("payments", "stripe"), pick(StepSucceeded, StepPending, StepFailed),
				json.RawMessage("{"+strings.Join(args, ",")+"}"), now))
		}
		in := NewInput(mcpCall("a", "b", `{}`), pivot, agent, sagaWith(steps...), now)

		v, err := in.value(cache, parts)
		if err != nil {
			t.Fatal(err)
		}
		fromCache := v.(ast.Object).Get(ast.StringTerm("saga")).Value.(ast.Object).Get(ast.StringTerm("amounts")).Value

		raw, err := json.Marshal(AmountTotals(steps))
		if err != nil {
			t.Fatal(err)
		}
		fromJSON := ast.MustParseTerm(string(raw)).Value

		stepsValue, err := ast.InterfaceToValue(steps)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := pq.Eval(context.Background(), rego.EvalParsedInput(stepsValue))
		if err != nil || len(rs) != 1 {
			t.Fatalf("saga_amounts: %v %v", rs, err)
		}
		fromRego, err := ast.InterfaceToValue(rs[0].Bindings["x"])
		if err != nil {
			t.Fatal(err)
		}

		if fromCache.Compare(fromJSON) != 0 || fromJSON.Compare(fromRego) != 0 {
			t.Fatalf("case %d, steps %v:\nstep cache %v\nJSON       %v\nRego       %v", i, steps, fromCache, fromJSON, fromRego)
		}
	}
}
