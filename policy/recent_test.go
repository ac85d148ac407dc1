package policy

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

func TestCountRecent(t *testing.T) {
	at := func(secondsAgo int) time.Time { return now.Add(-time.Duration(secondsAgo) * time.Second) }
	steps := []StepSummary{
		NewStepSummary("charge", "payments", StepSucceeded, nil, at(61)), // too old
		NewStepSummary("charge", "payments", StepSucceeded, nil, at(60)), // too old: 60 is not < 60
		NewStepSummary("charge", "payments", StepFailed, nil, at(59)),
		NewStepSummary("charge", "payments", StepDenied, nil, at(10)), // denied: not counted
		NewStepSummary("charge", "payments", StepPending, nil, at(1)),
		NewStepSummary("get_order", "orders", StepSucceeded, nil, at(5)),
		NewStepSummary("charge", "stripe", StepSucceeded, nil, at(0)),
	}
	got := CountRecent(steps, now.Unix())
	want := map[string]int{"orders/get_order": 1, "payments/charge": 2, "stripe/charge": 1}
	if b, _ := json.Marshal(got); string(b) != mustJSON(t, want) {
		t.Errorf("CountRecent = %s, want %s", b, mustJSON(t, want))
	}
	if got := CountRecent(nil, now.Unix()); got == nil || len(got) != 0 {
		t.Errorf("CountRecent(nil) = %#v, want an empty, non-nil list", got)
	}
}

// shippedQuery prepares query over the shipped policies with their tests
// and data (the tests' helpers are what it calls).
func shippedQuery(t *testing.T, query string) rego.PreparedEvalQuery {
	t.Helper()
	snap, err := readDir(shipped)
	if err != nil {
		t.Fatal(err)
	}
	mods, err := snap.modules(true)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := snap.document()
	if err != nil {
		t.Fatal(err)
	}
	opts := []func(*rego.Rego){rego.Query(query), rego.Store(inmem.NewFromObject(doc)), rego.StrictBuiltinErrors(true)}
	for _, m := range mods {
		opts = append(opts, rego.ParsedModule(m))
	}
	pq, err := rego.New(opts...).PrepareForEval(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return pq
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// saga.recent_calls is counted by CountRecent (the engine, Value and
// MarshalJSON) and by the shipped tests' Rego helper recent_calls, which
// builds the inputs of the rate-limit tests. They agree.
func TestRecentCallsMatchTheRegoHelper(t *testing.T) {
	pq := shippedQuery(t, "x := data.agenthelm.authz_test.recent_calls(input.steps, input.now)")
	r := rand.New(rand.NewPCG(3, 4))
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	for i := range 300 {
		var steps []StepSummary
		for range r.IntN(10) {
			steps = append(steps, NewStepSummary(pick("pay", "refund"), pick("payments", "stripe"),
				pick(StepSucceeded, StepPending, StepFailed, StepDenied), nil, now.Add(-time.Duration(r.IntN(90))*time.Second)))
		}
		in := NewInput(mcpCall("a", "b", `{}`), pivot, agent, sagaWith(steps...), now)
		v, err := in.Value()
		if err != nil {
			t.Fatal(err)
		}
		fromValue := v.(ast.Object).Get(ast.StringTerm("saga")).Value.(ast.Object).Get(ast.StringTerm("recent_calls")).Value

		doc, err := ast.InterfaceToValue(map[string]any{"steps": steps, "now": now.Unix()})
		if err != nil {
			t.Fatal(err)
		}
		rs, err := pq.Eval(context.Background(), rego.EvalParsedInput(doc))
		if err != nil || len(rs) != 1 {
			t.Fatalf("recent_calls: %v %v", rs, err)
		}
		fromRego, err := ast.InterfaceToValue(rs[0].Bindings["x"])
		if err != nil {
			t.Fatal(err)
		}
		if fromValue.Compare(fromRego) != 0 {
			t.Fatalf("case %d, steps %v:\nGo   %v\nRego %v", i, steps, fromValue, fromRego)
		}
	}
}
