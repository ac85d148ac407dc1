package policy

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/agenthelm/agenthelm/toolcall"
)

// realisticInputs are inputs as the saga engine builds them from front-door
// calls: MCP and HTTP, first steps and later ones, odd arguments.
func realisticInputs() map[string]Input {
	steps := []StepSummary{
		NewStepSummary("get_order", "orders", StepSucceeded, json.RawMessage(`{"order_id":"ord_1"}`), now.Add(-40*time.Second)),
		NewStepSummary("create_payment", "payments", StepCompensated, json.RawMessage(`{"amount":12.5}`), now.Add(-30*time.Second)),
		NewStepSummary("send_email", "mail", StepDenied, nil, now.Add(-20*time.Second)),
		NewStepSummary("write_file", "filesystem", StepPending, json.RawMessage(`{"path":"/workspace/a"}`), now.Add(-10*time.Second)),
		NewStepSummary("run_command", "shell", StepFailed, json.RawMessage(`{"command":"make"}`), now.Add(-5*time.Second)),
		NewStepSummary("delete_bucket", "storage", StepStuck, json.RawMessage(`{}`), now.Add(-time.Second)),
		NewStepSummary("charge", "payments", StepPending, json.RawMessage(`{"amount":"20.00","fee":0.3,"retries":0}`), now.Add(-time.Second)),
	}
	stdio := mcpCall("memory", "create_entities", `{"entities":[{"name":"a","entityType":"person","observations":[]}]}`)
	stdio.Transport = toolcall.Transport{Kind: "mcp", Protocol: "stdio", Method: "tools/call"}
	stdio.Client = toolcall.ClientInfo{}
	return map[string]Input{
		"mcp first call":     NewInput(mcpCall("filesystem", "read_text_file", `{"path":"/workspace/README.md"}`), readOnly, agent, sagaWith(), now),
		"mcp later step":     NewInput(mcpCall("payments", "charge_customer", `{"amount":750,"currency":"usd","metadata":{"n":[1,2.5e3,-0.0,true,null]}}`), compensatable, AgentInfo{ID: "cus", Source: AgentFromToken}, sagaWith(steps...), now),
		"stdio no identity":  NewInput(stdio, pivot, AgentInfo{}, SagaInfo{ID: "s"}, now),
		"http route":         NewInput(httpCall("payments", "charge", "POST", "/v1/charges", `{"amount":"20.00","unicode":"h\u00e9llo \ud83d\ude00","esc":"a\"b\\c\n"}`), compensatable, AgentInfo{ID: "10.0.0.7", Source: AgentFromSession}, sagaWith(steps[:1]...), now),
		"absent arguments":   NewInput(mcpCall("clock", "now", `null`), readOnly, agent, sagaWith(), now),
		"array body":         NewInput(httpCall("batch", "import", "PUT", "/v1/items", `[1,"two",{"3":[]}]`), pivot, agent, sagaWith(), now),
		"big exact number":   NewInput(mcpCall("ledger", "post", `{"amount":123456789012345678901234567890.000000000001}`), pivot, agent, sagaWith(), now),
		"duplicate json key": NewInput(mcpCall("x", "y", `{"path":"/workspace/ok","path":"/etc/shadow"}`), pivot, agent, sagaWith(), now),
	}
}

func TestInputMatchesSchema(t *testing.T) {
	var schemaDoc any
	if err := json.Unmarshal(InputSchema, &schemaDoc); err != nil {
		t.Fatalf("input.schema.json: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("input.schema.json", schemaDoc); err != nil {
		t.Fatal(err)
	}
	schema, err := c.Compile("input.schema.json")
	if err != nil {
		t.Fatalf("compile input.schema.json: %v", err)
	}
	validate := func(name string, raw []byte) {
		t.Helper()
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := schema.Validate(doc); err != nil {
			t.Errorf("%s does not match input.schema.json:\n%v\n%s", name, err, raw)
		}
	}
	for name, in := range realisticInputs() {
		raw, err := json.Marshal(in)
		if err != nil {
			t.Fatalf("%s: marshal: %v", name, err)
		}
		validate(name, raw)
	}
	validate("the example in docs/POLICY.md", docExample(t))

	// The schema is strict: it catches a field added to Input but not to
	// the schema, and documents that are not inputs.
	for name, raw := range map[string]string{
		"unknown field": `{"version":"agenthelm.policy/v1","tool":{},"arguments":{},"transport":{},"agent":{},"saga":{},"time":{},"extra":1}`,
		"old version":   strings.Replace(string(docExample(t)), InputVersion, "agenthelm.policy/v0", 1),
	} {
		doc, _ := jsonschema.UnmarshalJSON(strings.NewReader(raw))
		if schema.Validate(doc) == nil {
			t.Errorf("schema accepts %s", name)
		}
	}
}

// docExample returns the example input of docs/POLICY.md: the first ```json
// block after the heading "Example input".
func docExample(t *testing.T) []byte {
	t.Helper()
	doc, err := os.ReadFile("../docs/POLICY.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)### Example input.*?```json\n(.*?)\n```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/POLICY.md: no ```json block under ### Example input")
	}
	return m[1]
}

// Input.Value must build exactly the value OPA would build from the input's
// JSON, which is what the journal keeps and `policy eval` replays.
func TestInputValueMatchesJSON(t *testing.T) {
	for name, in := range realisticInputs() {
		raw, err := json.Marshal(in)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var x any
		if err := util.UnmarshalJSON(raw, &x); err != nil {
			t.Fatal(err)
		}
		want, err := ast.InterfaceToValue(x)
		if err != nil {
			t.Fatal(err)
		}
		got, err := in.Value()
		if err != nil {
			t.Fatalf("%s: Value: %v", name, err)
		}
		if got.Compare(want) != 0 {
			t.Errorf("%s: Value() differs from the JSON document\n got %v\nwant %v", name, got, want)
		}
	}
}

func TestNewInput(t *testing.T) {
	call := mcpCall("payments", "charge_customer", `{"amount":5}`)
	steps := []StepSummary{
		NewStepSummary("a", "u", StepSucceeded, nil, now.Add(-90*time.Second)),
		NewStepSummary("b", "u", StepSucceeded, nil, now.Add(-30*time.Second)),
		NewStepSummary("c", "u", StepDenied, nil, now.Add(-time.Second)),
	}
	in := NewInput(call, ToolInfo{HasCompensator: true}, AgentInfo{ID: "bot", Source: AgentFromHeader}, SagaInfo{ID: "s1", Steps: steps, ElapsedSeconds: 90}, time.Date(2026, 3, 2, 17, 4, 5, 0, time.FixedZone("CET", 3600)))
	want := Input{
		Version:   InputVersion,
		Tool:      ToolInfo{Name: "charge_customer", Upstream: "payments", HasCompensator: true},
		Arguments: json.RawMessage(`{"amount":5}`),
		Transport: call.Transport,
		Agent:     AgentInfo{ID: "bot", Source: AgentFromHeader, Client: toolcall.ClientInfo{Name: "claude-code", Version: "1.0.71"}},
		Saga:      SagaInfo{ID: "s1", Steps: steps, Counts: map[string]int{"total": 3, StepSucceeded: 2, StepDenied: 1}, ElapsedSeconds: 90},
		Time:      TimeInfo{Unix: 1772467445, RFC3339: "2026-03-02T16:04:05Z", Weekday: "Monday", Hour: 16},
	}
	if diff := cmp.Diff(want, in, cmp.AllowUnexported(StepSummary{}), cmp.Comparer(func(a, b *stepMemo) bool { return true })); diff != "" {
		t.Errorf("NewInput (-want +got):\n%s", diff)
	}
	if got := steps[0].Time; got != "2026-01-01T08:58:30.000Z" {
		t.Errorf("step time = %q, want UTC with milliseconds", got)
	}

	// Absent things are empty, not null.
	raw, err := json.Marshal(Input{Version: InputVersion})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"arguments":{}`, `"annotations":{}`, `"steps":[]`, `"counts":{}`, `"amounts":[]`, `"client":{}`} {
		if !bytes.Contains(raw, []byte(want)) {
			t.Errorf("json.Marshal(empty Input) = %s, want it to contain %s", raw, want)
		}
	}
}

func TestInputRejectsInvalidJSON(t *testing.T) {
	for _, args := range []string{`{"a":`, `{"a":1}}`, `{'a':1}`, `[1,]`, `01`, `"\x"`, `{"a":1} x`, `NaN`, "\"a\x01\""} {
		in := NewInput(mcpCall("a", "b", `{}`), pivot, agent, sagaWith(), now)
		in.Arguments = json.RawMessage(args)
		if _, err := in.Value(); err == nil {
			t.Errorf("Value() with arguments %q succeeded, want an error", args)
		}
	}
	in := NewInput(mcpCall("a", "b", `{}`), pivot, agent, sagaWith(NewStepSummary("x", "y", StepSucceeded, json.RawMessage(`{`), now)), now)
	if _, err := in.Value(); err == nil || !strings.Contains(err.Error(), "input.saga.steps[0].arguments") {
		t.Errorf("Value() with a broken step = %v, want an error naming the step", err)
	}
}

// parseJSONValue must accept exactly what encoding/json accepts and build
// the value OPA builds from it.
func FuzzParseJSONValue(f *testing.F) {
	for _, s := range []string{
		`{}`, `[]`, `null`, `true`, `-0.5e-3`, `"h\u00e9\ud83d\ude00\n"`, `{"a":[1,{"b":null}],"a":2}`,
		`  {"x" : "y" , "z":[ ]}  `, `1e400`, `"\xff"`, `[1,2,]`, `{"a"}`, `-`, `01`, `1.`, `"`, "\"\t\"",
		`{"path":"/workspace/ok","path":"/etc/shadow"}`, `123456789012345678901234567890`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := parseJSONValue(data)
		var x any
		werr := util.UnmarshalJSON(data, &x)
		if (err == nil) != (werr == nil) || !json.Valid(data) != (err != nil) {
			t.Fatalf("parseJSONValue(%q) error = %v; encoding/json: %v", data, err, werr)
		}
		if err != nil {
			return
		}
		want, err := ast.InterfaceToValue(x)
		if err != nil {
			t.Skip() // a number OPA cannot represent
		}
		if got.Compare(want) != 0 {
			t.Fatalf("parseJSONValue(%q) = %v, want %v", data, got, want)
		}
	})
}

func TestStepCache(t *testing.T) {
	c := newStepCache(2)
	step := NewStepSummary("create_payment", "payments", StepPending, json.RawMessage(`{"amount":5}`), now)
	first, _, err := c.step(&step)
	if err != nil {
		t.Fatal(err)
	}
	again, _, _ := c.step(&step)
	if again != first {
		t.Errorf("second lookup of the same step converted it again")
	}
	// A new status, or other arguments, is another value.
	done := step
	done.Status = StepSucceeded
	other := step
	other.Arguments = json.RawMessage(`{"amount":6}`)
	for _, s := range []StepSummary{done, other} {
		got, _, _ := c.step(&s)
		want, _, _ := stepValue(&s)
		if got == first || got.Value.Compare(want.Value) != 0 {
			t.Errorf("step %s %s = %v, want %v", s.Status, s.Arguments, got, want)
		}
	}
	// Bounded: two generations of two entries.
	for i := range 10 {
		s := NewStepSummary("t", "u", StepSucceeded, json.RawMessage(`{"i":`+string(rune('0'+i))+`}`), now)
		if _, _, err := c.step(&s); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(c.cur) + len(c.old); n > 4 {
		t.Errorf("cache holds %d steps, want at most 4", n)
	}
	bad := NewStepSummary("t", "u", StepSucceeded, json.RawMessage(`{`), now)
	if _, _, err := c.step(&bad); err == nil {
		t.Error("a step with broken arguments converted")
	}
}

func TestPartCache(t *testing.T) {
	c := newPartCache()
	in := NewInput(mcpCall("filesystem", "read_text_file", `{"path":"/workspace/a"}`), readOnly, agent, sagaWith(), now)
	value := func(in Input) ast.Value {
		t.Helper()
		v, err := in.value(nil, c)
		if err != nil {
			t.Fatal(err)
		}
		want, err := in.Value()
		if err != nil {
			t.Fatal(err)
		}
		if v.Compare(want) != 0 {
			t.Fatalf("cached input = %v, want %v", v, want)
		}
		return v
	}
	part := func(v ast.Value, key string) ast.Value {
		return v.(ast.Object).Get(ast.StringTerm(key)).Value
	}
	first := value(in)
	again := value(in)
	for _, key := range []string{"tool", "transport", "agent", "time"} {
		if part(first, key) != part(again, key) {
			t.Errorf("%s was built again for the same input", key)
		}
	}

	// Any change is a new value (value() checks it is the right one).
	changed := in
	changed.Tool.Annotations = map[string]any{"readOnlyHint": false}
	if part(value(changed), "tool") == part(first, "tool") {
		t.Error("tool with other annotations shares the cached value")
	}
	changed = in
	changed.Tool.Annotations = map[string]any{"readOnlyHint": true, "title": "Read"}
	value(changed)
	changed = in
	changed.Tool.Annotations = map[string]any{"nested": map[string]any{"a": 1}} // not cached, still right
	value(changed)
	changed = in
	changed.Transport.Headers = map[string]string{"User-Agent": "other/2.0"}
	if part(value(changed), "transport") == part(first, "transport") {
		t.Error("transport with other headers shares the cached value")
	}
	// HTTP calls on one path with other queries (value() checks each).
	changed = in
	changed.Transport.Kind, changed.Transport.Method, changed.Transport.Path = "http", "GET", "/v1/charges"
	changed.Transport.Query = map[string][]string{"limit": {"1"}}
	value(changed)
	changed.Transport.Query = map[string][]string{"limit": {"100"}}
	value(changed)
	changed = in
	changed.Transport.SessionID = "other"
	value(changed)
	changed = in
	changed.Agent.Client.Version = "9"
	value(changed)
	changed = in
	changed.Time = NewTimeInfo(now.Add(time.Second))
	value(changed)
	value(in)

	// The entries of saga.amounts are shared while their steps are the same.
	steps := newStepCache(8)
	paid := NewStepSummary("create_payment", "payments", StepSucceeded, json.RawMessage(`{"amount":5}`), now)
	amounts := func(in Input) *ast.Array {
		t.Helper()
		v, err := in.value(steps, c)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := in.Value()
		if v.Compare(want) != 0 {
			t.Fatalf("cached input = %v, want %v", v, want)
		}
		return part(part(v, "saga"), "amounts").(*ast.Array)
	}
	one := NewInput(mcpCall("payments", "charge", `{}`), compensatable, agent, sagaWith(paid), now)
	spent := amounts(one)
	later := one
	later.Saga.Steps = append([]StepSummary{paid}, NewStepSummary("get_order", "orders", StepSucceeded, json.RawMessage(`{"id":"ord_1"}`), now))
	if got := amounts(later); got.Len() != 1 || got.Elem(0) != spent.Elem(0) {
		t.Errorf("amounts of a saga whose spending did not change = %v, want the same entry as before", got)
	}
	more := one
	more.Saga.Steps = []StepSummary{paid, paid}
	if got := amounts(more); got.Elem(0) == spent.Elem(0) {
		t.Errorf("amounts of a saga that spent again share the old entry: %v", got)
	}
}
