package compensators

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestEval(t *testing.T) {
	text := func(s string) string {
		b, _ := json.Marshal(s)
		return `{"content":[{"type":"text","text":` + string(b) + `}]}`
	}
	tests := []struct {
		expr                  string
		args, result, capture string
		want                  string
	}{
		{expr: "", want: `{}`},
		{expr: "  \n", want: `{}`},
		{expr: `{a: .args.x, r: .result.isError, c: .capture}`, args: `{"x":"y"}`, result: `{"isError":false}`, want: `{"a":"y","c":null,"r":false}`},
		// Large integer ids keep every digit.
		{expr: `{id: .args.id, n: (.args.small + 1)}`, args: `{"id":12345678901234567890123,"small":41}`, want: `{"id":12345678901234567890123,"n":42}`},
		// server-memory returns its JSON as text.
		{expr: `{names: [.result_json[].name]}`, result: text(`[{"name":"a"},{"name":"b"}]`), want: `{"names":["a","b"]}`},
		{expr: `{g: .capture_json.entities}`, capture: text(`{"entities":[]}`), want: `{"g":[]}`},
		// Only the first text item counts, and only if it parses.
		{expr: `{j: .result_json}`, result: `{"content":[{"type":"image","data":"AA=="},{"type":"text","text":"not json"},{"type":"text","text":"{}"}]}`, want: `{"j":null}`},
		{expr: `{j: .result_json}`, result: text(`{"a":1} trailing`), want: `{"j":null}`},
		{expr: `{j: .result_json, k: .capture_json}`, want: `{"j":null,"k":null}`},
		{expr: `{content: .capture.structuredContent.content}`, capture: `{"content":[{"type":"text","text":"a\r\nb"}],"structuredContent":{"content":"a\r\nb"}}`, want: `{"content":"a\r\nb"}`},
		// No environment reaches an expression.
		{expr: `{e: $ENV, f: env}`, want: `{"e":{},"f":{}}`},
	}
	for _, tt := range tests {
		got, err := Eval(tt.expr, json.RawMessage(tt.args), json.RawMessage(tt.result), json.RawMessage(tt.capture))
		if err != nil {
			t.Errorf("Eval(%q) error: %v", tt.expr, err)
			continue
		}
		if string(got) != tt.want {
			t.Errorf("Eval(%q) = %s, want %s", tt.expr, got, tt.want)
		}
	}
}

func TestEvalErrors(t *testing.T) {
	tests := []struct {
		expr, args string
		want       string // in the error
	}{
		{expr: `{a: }`, want: "jq parse error"},
		{expr: `{a: undefined_function}`, want: "jq compile error"},
		{expr: `.args.x`, args: `{"x":1}`, want: "produced a number, want an object"},
		{expr: `[1]`, want: "produced an array, want an object"},
		{expr: `"s"`, want: "produced a string, want an object"},
		{expr: `null`, want: "produced null, want an object"},
		{expr: `true`, want: "produced a boolean, want an object"},
		{expr: `{a: 1}, {b: 2}`, want: "produced more than one value"},
		{expr: `.args.list[] | {x: .}`, args: `{"list":[1,2]}`, want: "produced more than one value"},
		{expr: `empty`, want: "produced no value"},
		{expr: `{a: 1} | error("boom")`, want: "boom"},
		{expr: `{a: 1}, error("late")`, want: "late"},
		{expr: `{a: .args.x[]}`, args: `{"x":"str"}`, want: "cannot iterate"},
		{expr: `{a: .args}`, args: `{"x":`, want: ".args is not JSON"},
		{expr: `{a: .args}`, args: `{} {}`, want: ".args is not JSON"},
		{expr: `{a: input}`, want: "input"},
		// repeat yields values without end: the second one is an error.
		{expr: `repeat({a: 1})`, want: "produced more than one value"},
	}
	for _, tt := range tests {
		got, err := Eval(tt.expr, json.RawMessage(tt.args), nil, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Eval(%q) = %s, %v; want an error containing %q", tt.expr, got, err, tt.want)
		}
		if errors.Is(err, ErrCannotUndo) {
			t.Errorf("Eval(%q) error %v is ErrCannotUndo", tt.expr, err)
		}
	}
}

func TestEvalCannotUndo(t *testing.T) {
	_, err := Eval(`error({cannot_undo: "x.txt was created"})`, nil, nil, nil)
	if !errors.Is(err, ErrCannotUndo) || !strings.Contains(err.Error(), "x.txt was created") {
		t.Errorf("Eval(cannot_undo) = %v, want ErrCannotUndo with the reason", err)
	}
	// Caught with try, it is no error.
	if got, err := Eval(`try error({cannot_undo: "x"}) catch {caught: .cannot_undo}`, nil, nil, nil); err != nil || string(got) != `{"caught":"x"}` {
		t.Errorf("Eval(try cannot_undo) = %s, %v", got, err)
	}
}

// TestEvalRunaway checks that expressions that never finish are stopped.
func TestEvalRunaway(t *testing.T) {
	for _, expr := range []string{
		`def f: f; f`,
		`[repeat(1)] | {n: length}`,
		`{a: 1}, (def f: f; f)`,
		`{n: last(range(infinite))}`,
	} {
		t.Run(expr, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			_, err := Eval(expr, nil, nil, nil)
			if err == nil || !strings.Contains(err.Error(), "stopped after") {
				t.Errorf("Eval(%q) = %v, want it stopped", expr, err)
			}
			if d := time.Since(start); d > evalTimeout+2*time.Second {
				t.Errorf("Eval(%q) took %s", expr, d)
			}
		})
	}
}

func TestEvalCache(t *testing.T) {
	expr := `{cached: .args}`
	for range 3 {
		if _, err := Eval(expr, json.RawMessage(`1`), nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	cache.RLock()
	c, ok := cache.progs[expr]
	cache.RUnlock()
	if !ok || c.code == nil {
		t.Errorf("Eval(%q) left no compiled program in the cache", expr)
	}
	// A compile error is cached as well, and reported each time.
	for range 2 {
		if _, err := Eval(`{`, nil, nil, nil); err == nil {
			t.Error(`Eval("{") succeeded`)
		}
	}
}

func TestNeedsResult(t *testing.T) {
	tests := []struct {
		expr string
		want bool
	}{
		{`{a: .result.structuredContent.id}`, true},
		{`{a: .result_json[0]}`, true},
		{`{a: ."result".x}`, true},
		{`{a: .["result"]}`, true},
		{`{a: getpath(["result", "content"])}`, true},
		{`{result}`, true},
		{`{"result_json"}`, true},
		{`. as {result: $r} | {r: $r}`, true},
		{`. as {$result_json} | {r: $result_json}`, true},
		{`{s: "id \(.result.id)"}`, true},
		{`def f: .result; {a: f}`, true},
		{`reduce .result.content[] as $c ({}; .)`, true},
		// Conservative: any field of that name counts.
		{`{a: .args.result}`, true},
		// A parse error: it cannot run, so it cannot run without a result.
		{`{a: `, true},

		{``, false},
		{`{entityNames: [.args.entities[].name]}`, false},
		{`{result: .args.x}`, false},
		{`{"result": .args.x}`, false},
		{`{a: .capture.structuredContent.results}`, false},
		{`{a: .capture_json}`, false},
		{`{a: "results"}`, false},
	}
	for _, tt := range tests {
		if got := NeedsResult(tt.expr); got != tt.want {
			t.Errorf("NeedsResult(%q) = %v, want %v", tt.expr, got, tt.want)
		}
	}
}
