package compensators

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/agenthelm/agenthelm/config"
	"github.com/agenthelm/agenthelm/saga"
	"github.com/google/go-cmp/cmp"
)

func parse(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), "agenthelm.yaml")
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

func newSet(t *testing.T, yaml string) *Set {
	t.Helper()
	s, err := New(parse(t, yaml))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

const precedenceYAML = `
upstreams:
  memory:
    command: [node, memory.js]
    trusted: true
    packs: [memory]
    tools:
      create_entities:
        compensate: {tool: delete_entities, args: '{entityNames: [.args.entities[].name]}'}
      delete_entities: {on_error: continue, errors_may_leave_effects: true}
      custom: {read_only: true}
  untrusted:
    command: [node, other.js]
    tools:
      pay: {irreversible: true}
`

func yes() *bool { b := true; return &b }
func no() *bool  { b := false; return &b }

// TestRulePrecedence: config > pack > trusted annotations > default, and
// an untrusted upstream's annotations count for nothing.
func TestRulePrecedence(t *testing.T) {
	s := newSet(t, precedenceYAML)
	s.SetAnnotations("memory", map[string]Annotations{
		"create_relations": {ReadOnlyHint: yes()}, // the pack's rule wins
		"read_graph":       {ReadOnlyHint: no()},  // so does this one
		"custom":           {ReadOnlyHint: no()},  // and the config's
		"peek":             {ReadOnlyHint: yes(), IdempotentHint: yes(), DestructiveHint: no()},
		"poke":             {ReadOnlyHint: no(), DestructiveHint: yes()},
	})
	s.SetAnnotations("untrusted", map[string]Annotations{"peek": {ReadOnlyHint: yes(), IdempotentHint: yes()}})
	pack := packs["memory"]

	withSource := func(r Rule, src string) Rule { r.Source = src; return r }
	deleteEntities := withSource(pack["delete_entities"], "config")
	deleteEntities.ContinueOnError, deleteEntities.ErrorsMayLeaveEffects = true, true

	tests := []struct {
		up, tool string
		want     Rule
	}{
		// The config replaces the pack's undo, capture included.
		{"memory", "create_entities", Rule{Source: "config",
			Compensate: &saga.Compensator{Tool: "delete_entities", Args: "{entityNames: [.args.entities[].name]}"}}},
		// Flags only: the pack's undo stays.
		{"memory", "delete_entities", deleteEntities},
		{"memory", "custom", Rule{ReadOnly: true, Source: "config"}},
		{"memory", "create_relations", withSource(pack["create_relations"], "pack:memory")},
		{"memory", "read_graph", Rule{ReadOnly: true, Idempotent: true, Source: "pack:memory"}},
		{"memory", "peek", Rule{ReadOnly: true, Idempotent: true, Source: "annotations"}},
		{"memory", "poke", Rule{Source: "annotations"}},
		{"memory", "unlisted", Rule{Source: "default"}},
		{"untrusted", "peek", Rule{Source: "default"}},
		{"untrusted", "pay", Rule{Irreversible: true, Source: "config"}},
		{"nowhere", "peek", Rule{Source: "default"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, s.Rule(tt.up, tt.tool)); diff != "" {
			t.Errorf("Rule(%q, %q) (-want +got):\n%s", tt.up, tt.tool, diff)
		}
	}
	if got := s.Rule("memory", "delete_entities"); got.Compensate == nil || len(got.Compensate.Then) != 1 || got.Capture == nil {
		t.Fatalf("Rule(memory, delete_entities) lost the pack's undo: %+v", got)
	}

	// A later listing replaces the earlier one.
	s.SetAnnotations("memory", map[string]Annotations{"poke": {ReadOnlyHint: yes()}})
	if got := s.Rule("memory", "peek"); got.Source != "default" {
		t.Errorf("Rule(memory, peek) after a new listing = %+v, want the default", got)
	}
	if got := s.Rule("memory", "poke"); !got.ReadOnly {
		t.Errorf("Rule(memory, poke) after a new listing = %+v, want read-only", got)
	}

	// Callers may modify what Rule returns.
	r := s.Rule("memory", "delete_entities")
	r.Compensate.Then[0].Tool, r.Compensate.Args, r.Capture.Tool = "x", "y", "z"
	if diff := cmp.Diff(deleteEntities, s.Rule("memory", "delete_entities")); diff != "" {
		t.Errorf("Rule(memory, delete_entities) changed after a caller modified it (-want +got):\n%s", diff)
	}
}

func TestNewErrors(t *testing.T) {
	cfg := config.Default()
	cfg.Upstreams = map[string]config.Upstream{
		"a": {Command: []string{"x"}, Packs: []string{"memory", "nope"}, Tools: map[string]config.Tool{
			"t": {Compensate: &config.ToolCall{Tool: "u", Args: config.Expr{Source: "{a: "}}},
			"v": {Capture: &config.ToolCall{Tool: "w", Args: config.Expr{Source: "{a: nosuchfunc}"}}, Compensate: &config.ToolCall{Tool: "u"}},
		}},
	}
	_, err := New(cfg)
	for _, want := range []string{
		`upstreams.a.packs[1]: unknown pack "nope" (known: filesystem, memory)`,
		`upstreams.a.tools.t.compensate.args: jq parse error`,
		`upstreams.a.tools.v.capture.args: jq compile error`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New = %v, want an error containing %q", err, want)
		}
	}
}

// TestPacksCompile builds every pack, which compiles all their
// expressions, and checks that config knows exactly these packs.
func TestPacksCompile(t *testing.T) {
	var y strings.Builder
	y.WriteString("upstreams:\n")
	for _, name := range PackNames() {
		y.WriteString("  " + name + ": {command: [x], packs: [" + name + "]}\n")
	}
	s := newSet(t, y.String())
	for _, name := range PackNames() {
		for tool, r := range packs[name] {
			got := s.Rule(name, tool)
			if got.Source != "pack:"+name {
				t.Errorf("Rule(%q, %q).Source = %q", name, tool, got.Source)
			}
			switch {
			case r.ReadOnly && (r.Compensate != nil || r.Capture != nil || r.Irreversible):
				t.Errorf("pack %s: %s is read-only but has an undo", name, tool)
			case !r.ReadOnly && r.Compensate == nil && !r.Irreversible:
				t.Errorf("pack %s: %s is neither read-only, compensated nor irreversible", name, tool)
			}
		}
	}
	if got, want := slices.Sorted(maps.Keys(config.KnownPacks)), PackNames(); !slices.Equal(got, want) {
		t.Errorf("config.KnownPacks = %v, want %v", got, want)
	}
}

func TestPackNeedsResult(t *testing.T) {
	for _, tt := range []struct {
		pack, tool string
		want       bool
	}{
		{"memory", "create_entities", false}, // from the capture: an in-doubt step can be undone
		{"memory", "create_relations", true},
		{"memory", "add_observations", true},
		{"memory", "delete_entities", false},
		{"memory", "delete_observations", false},
		{"memory", "delete_relations", false},
		{"filesystem", "write_file", false},
		{"filesystem", "edit_file", false},
		{"filesystem", "move_file", false},
	} {
		if got := packs[tt.pack][tt.tool].Compensate.NeedsResult; got != tt.want {
			t.Errorf("pack %s: %s NeedsResult = %v, want %v", tt.pack, tt.tool, got, tt.want)
		}
	}
}

var memoryTools = []string{"add_observations", "create_entities", "create_relations", "delete_entities",
	"delete_observations", "delete_relations", "open_nodes", "read_graph", "search_nodes"}

func TestCheck(t *testing.T) {
	s := newSet(t, `
upstreams:
  memory:
    command: [x]
    packs: [memory]
    tools:
      create_entities:
        compensate: {tool: delete_entitys, args: '{entityNames: [.args.entities[].name]}'}
      create_entitys: {read_only: true}
  bare: {command: [x]}
`)
	has := strings.Join(memoryTools, ", ")
	want := []string{
		`upstreams.memory.tools.create_entities.compensate.tool: "delete_entitys" is not a tool of upstream memory (it has: ` + has + `)`,
		`upstreams.memory.tools.create_entitys: "create_entitys" is not a tool of upstream memory (it has: ` + has + `)`,
	}
	if diff := cmp.Diff(want, errorStrings(s.Check("memory", memoryTools))); diff != "" {
		t.Errorf("Check(memory) (-want +got):\n%s", diff)
	}

	// A server without open_nodes and create_relations: every pack call
	// to them is reported; pack rules for tools it lacks are not.
	lacking := []string{"create_entities", "delete_entities", "delete_relations", "delete_entitys"}
	has = strings.Join(slices.Sorted(slices.Values(lacking)), ", ")
	want = []string{
		`upstreams.memory.packs[0] (pack memory): delete_entities.capture.tool: "open_nodes" is not a tool of upstream memory (it has: ` + has + `)`,
		`upstreams.memory.packs[0] (pack memory): delete_entities.compensate.then[0].tool: "create_relations" is not a tool of upstream memory (it has: ` + has + `)`,
		`upstreams.memory.packs[0] (pack memory): delete_relations.capture.tool: "open_nodes" is not a tool of upstream memory (it has: ` + has + `)`,
		`upstreams.memory.packs[0] (pack memory): delete_relations.compensate.tool: "create_relations" is not a tool of upstream memory (it has: ` + has + `)`,
		`upstreams.memory.tools.create_entitys: "create_entitys" is not a tool of upstream memory (it has: ` + has + `)`,
	}
	if diff := cmp.Diff(want, errorStrings(s.Check("memory", lacking))); diff != "" {
		t.Errorf("Check(memory, lacking) (-want +got):\n%s", diff)
	}
	if errs := s.Check("bare", nil); errs != nil {
		t.Errorf("Check(bare) = %v, want nothing", errs)
	}
	if errs := s.Check("unknown", []string{"a"}); errs != nil {
		t.Errorf("Check(unknown) = %v, want nothing", errs)
	}
}

func errorStrings(errs []error) []string {
	var s []string
	for _, err := range errs {
		s = append(s, err.Error())
	}
	slices.Sort(s)
	return s
}
