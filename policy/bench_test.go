package policy

import (
	"context"
	"encoding/json"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/util"
)

// benchInput is a realistic call for the shipped policies: a charge in the
// middle of a saga of eight steps, so every rule file has work to do.
func benchInput() Input {
	var steps []StepSummary
	for i := range 8 {
		at := now.Add(-time.Duration(8-i) * 5 * time.Second)
		switch i % 4 {
		case 0:
			steps = append(steps, NewStepSummary("get_order", "orders", StepSucceeded, json.RawMessage(`{"order_id":"ord_1842","expand":["items","customer"]}`), at))
		case 1:
			steps = append(steps, NewStepSummary("create_payment", "payments", StepSucceeded, json.RawMessage(`{"amount":120.5,"currency":"eur","customer":"cus_9"}`), at))
		case 2:
			steps = append(steps, NewStepSummary("write_file", "filesystem", StepSucceeded, json.RawMessage(`{"path":"/workspace/receipts/ord_1842.txt","content":"Receipt for order 1842: 2 items, 120.50 EUR"}`), at))
		case 3:
			steps = append(steps, NewStepSummary("send_email", "mail", StepPending, json.RawMessage(`{"to":"customer@example.com","subject":"Your refund","body":"Hello, your refund is on its way."}`), at))
		}
	}
	call := mcpCall("payments", "charge_customer", `{"customer":"cus_9","amount":750,"currency":"eur","description":"Replacement order 1842","metadata":{"order_id":"ord_1842","agent":"support-bot"}}`)
	return NewInput(call, compensatable, agent, sagaWith(steps...), now)
}

// writeInput is the common call in the middle of a saga: a write that can
// be undone, allowed, with the same eight earlier steps as benchInput.
func writeInput() Input {
	in := benchInput()
	w := NewInput(mcpCall("memory", "create_entities", `{"entities":[{"name":"order 1842","entityType":"order","observations":["replacement requested"]}]}`),
		compensatable, agent, in.Saga, now)
	return w
}

// lightInput is the most common kind of call: a read-only tool, first step
// of its saga.
func lightInput() Input {
	return NewInput(mcpCall("filesystem", "read_text_file", `{"path":"/workspace/src/main.go"}`), readOnly, agent, sagaWith(), now)
}

// BenchmarkDecide measures Decide, and reports the median and 99th
// percentile latency of single decisions (p50-µs, p99-µs, wall clock) and
// the CPU time of the deciding thread per decision (cpu-µs/op, which leaves
// out waiting for a core on a shared machine):
//
//   - shipped/heavy: the shipped policies, a charge in the middle of a saga
//     of eight steps (every rule file has work to do; the call is held);
//
//   - shipped/light: the shipped policies, a read-only call, first step;
//
//   - shipped/write: the shipped policies, an allowed write that can be
//     undone, in the same saga of eight steps as heavy;
//
//   - minimal: a one-line policy, for the cost of Decide around OPA.
//
//     go test ./policy/ -run '^$' -bench 'Decide$' -benchtime 20000x
func BenchmarkDecide(b *testing.B) {
	minimal := policyDir(b, map[string]string{"authz.rego": "package agenthelm.authz\n\ndecision := {\"allow\": true}\n"})
	for _, bc := range []struct {
		name    string
		dir     string
		in      Input
		verdict string
	}{
		{"shipped/heavy", shipped, benchInput(), VerdictRequireApproval},
		{"shipped/light", shipped, lightInput(), VerdictAllow},
		{"shipped/write", shipped, writeInput(), VerdictAllow},
		{"minimal", minimal, benchInput(), VerdictAllow},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := newEngine(b, Options{Dir: bc.dir})
			ctx := context.Background()
			if d := e.Decide(ctx, bc.in); d.Verdict() != bc.verdict || d.Err != nil {
				b.Fatalf("Decide = %s %v, want %s", d.Verdict(), d.Err, bc.verdict)
			}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			lat := make([]time.Duration, 0, b.N)
			cpu0, cpuOK := threadCPUTime()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				e.Decide(ctx, bc.in)
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			cpu1, _ := threadCPUTime()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
			if cpuOK {
				b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
			}
		})
	}
}

// BenchmarkInputConversion compares ways of handing the input to OPA:
//
//   - ast: Input.Value builds the AST value directly;
//   - ast-cached: the same with the engine's caches of saga steps and of
//     the parts that repeat (tool, transport, agent, time), warm (what
//     Decide does from a saga's second call on);
//   - json-map: marshal to JSON, decode to map[string]any, convert;
//   - struct: rego.EvalInput(input), where OPA converts the Go struct itself
//     (a JSON round trip by reflection).
//
// "convert" measures the conversion alone; "decide" a whole evaluation of
// the shipped policies with the converted input.
func BenchmarkInputConversion(b *testing.B) {
	in := benchInput()
	cache, parts := newStepCache(stepCacheSize), newPartCache()
	convs := []struct {
		name string
		fn   func(*Input) (ast.Value, error)
	}{
		{"ast", func(in *Input) (ast.Value, error) { return in.Value() }},
		{"ast-cached", func(in *Input) (ast.Value, error) { return in.value(cache, parts) }},
		{"json-map", func(in *Input) (ast.Value, error) {
			raw, err := json.Marshal(in)
			if err != nil {
				return nil, err
			}
			var x any
			if err := util.UnmarshalJSON(raw, &x); err != nil {
				return nil, err
			}
			return ast.InterfaceToValue(x)
		}},
		{"struct", func(in *Input) (ast.Value, error) { return ast.InterfaceToValue(*in) }},
	}
	for _, c := range convs {
		b.Run("convert/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, err := c.fn(&in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}

	e := newEngine(b, Options{Dir: shipped})
	rev := e.cur.Load()
	ctx := context.Background()
	for _, c := range convs {
		b.Run("decide/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				v, err := c.fn(&in)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := rev.query.Eval(ctx, rego.EvalParsedInput(v)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("decide/struct-evalinput", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := rev.query.Eval(ctx, rego.EvalInput(in)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
