package compensators

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/agenthelm/agenthelm/internal/testservers"
	"github.com/google/go-cmp/cmp"
)

type entity struct {
	Name         string   `json:"name"`
	EntityType   string   `json:"entityType"`
	Observations []string `json:"observations"`
}

type relation struct {
	From         string `json:"from"`
	To           string `json:"to"`
	RelationType string `json:"relationType"`
}

type graph struct {
	Entities  []entity   `json:"entities"`
	Relations []relation `json:"relations"`
}

// seed writes g as server-memory's file; the server reads the file on
// every call.
func seed(t *testing.T, file string, g graph) {
	t.Helper()
	var lines []string
	for _, e := range g.Entities {
		b, _ := json.Marshal(struct {
			Type string `json:"type"`
			entity
		}{"entity", e})
		lines = append(lines, string(b))
	}
	for _, r := range g.Relations {
		b, _ := json.Marshal(struct {
			Type string `json:"type"`
			relation
		}{"relation", r})
		lines = append(lines, string(b))
	}
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
}

// readGraph returns the graph as read_graph shows it, in its order.
func readGraph(t *testing.T, s *server) graph {
	t.Helper()
	var res struct{ StructuredContent graph }
	if err := json.Unmarshal(s.call(t, "read_graph", json.RawMessage(`{}`)), &res); err != nil {
		t.Fatal(err)
	}
	return res.StructuredContent
}

// sorted puts a graph in a canonical order: re-created entities,
// relations and observations come back at the end of their lists.
func sorted(g graph) graph {
	out := graph{Entities: slices.Clone(g.Entities), Relations: slices.Clone(g.Relations)}
	for i, e := range out.Entities {
		out.Entities[i].Observations = slices.Sorted(slices.Values(e.Observations))
	}
	slices.SortFunc(out.Entities, func(a, b entity) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(out.Relations, func(a, b relation) int {
		return strings.Compare(a.From+"\x00"+a.To+"\x00"+a.RelationType, b.From+"\x00"+b.To+"\x00"+b.RelationType)
	})
	return out
}

func ent(name string, obs ...string) entity {
	return entity{Name: name, EntityType: "person", Observations: append([]string{}, obs...)}
}

func rel(from, to, typ string) relation { return relation{From: from, To: to, RelationType: typ} }

// TestMemoryPack runs each write tool of the real server-memory and its
// pack compensation, and checks that the graph is as before.
func TestMemoryPack(t *testing.T) {
	file := filepath.Join(t.TempDir(), "memory.jsonl")
	s := startServer(t, "memory", "memory", testservers.Memory(t), testservers.MemoryEnv(file))

	t.Run("tools", func(t *testing.T) {
		tools := s.tools(t)
		if errs := s.set.Check("memory", tools); len(errs) > 0 {
			t.Errorf("Check = %v", errs)
		}
		for _, tool := range tools {
			if r := s.set.Rule("memory", tool); r.Source != "pack:memory" {
				t.Errorf("Rule(memory, %q) = %+v: the pack does not cover it", tool, r)
			}
		}
	})

	base := graph{
		Entities:  []entity{ent("alice", "likes tea"), ent("bob"), ent("carol", "a", "b", "c")},
		Relations: []relation{rel("alice", "bob", "knows"), rel("bob", "carol", "knows"), rel("carol", "alice", "likes")},
	}
	tests := []struct {
		name, tool, args string
		// during checks the graph after the forward call.
		during func(t *testing.T, g graph)
		// exact: the graph must be as before in read_graph's order too
		// (undoing creations only deletes); else in canonical order.
		exact bool
	}{
		{
			name: "create_entities keeps entities that already existed",
			tool: "create_entities",
			args: `{"entities": [{"name": "alice", "entityType": "robot", "observations": ["other"]},
				{"name": "dave", "entityType": "person", "observations": ["new"]},
				{"name": "erin", "entityType": "person", "observations": []},
				{"name": "dave", "entityType": "person", "observations": ["twice"]}]}`,
			during: func(t *testing.T, g graph) {
				if len(g.Entities) != 6 {
					t.Errorf("after create_entities: %d entities, want 6 (dave twice, erin)", len(g.Entities))
				}
			},
			exact: true,
		},
		{
			name:  "create_entities of names that all existed",
			tool:  "create_entities",
			args:  `{"entities": [{"name": "bob", "entityType": "person", "observations": ["x"]}]}`,
			exact: true,
		},
		{
			name: "create_relations deletes only the new relations",
			tool: "create_relations",
			args: `{"relations": [{"from": "alice", "to": "bob", "relationType": "knows"},
				{"from": "bob", "to": "alice", "relationType": "knows"},
				{"from": "alice", "to": "ghost", "relationType": "haunts"}]}`,
			during: func(t *testing.T, g graph) {
				if len(g.Relations) != 5 {
					t.Errorf("after create_relations: %d relations, want 5", len(g.Relations))
				}
			},
			exact: true,
		},
		{
			name: "add_observations removes only the observations it added (duplicate observation)",
			tool: "add_observations",
			args: `{"observations": [{"entityName": "alice", "contents": ["likes tea", "plays chess"]},
				{"entityName": "bob", "contents": ["tall", "tall"]}]}`,
			during: func(t *testing.T, g graph) {
				if got := g.Entities[0].Observations; !slices.Equal(got, []string{"likes tea", "plays chess"}) {
					t.Errorf("after add_observations: alice has %q", got)
				}
			},
			exact: true,
		},
		{
			name: "delete_entities re-creates entities and their relations",
			tool: "delete_entities",
			args: `{"entityNames": ["carol", "nobody"]}`,
			during: func(t *testing.T, g graph) {
				if len(g.Entities) != 2 || len(g.Relations) != 1 {
					t.Errorf("after delete_entities: %+v", g)
				}
			},
		},
		{
			name: "delete_observations re-adds only observations that existed",
			tool: "delete_observations",
			args: `{"deletions": [{"entityName": "carol", "observations": ["b", "zzz"]},
				{"entityName": "nobody", "observations": ["q"]},
				{"entityName": "alice", "observations": ["likes tea"]},
				{"entityName": "carol", "observations": ["c"]}]}`,
			during: func(t *testing.T, g graph) {
				if got := g.Entities[2].Observations; !slices.Equal(got, []string{"a"}) {
					t.Errorf("after delete_observations: carol has %q", got)
				}
			},
		},
		{
			name: "delete_relations re-creates only relations that existed",
			tool: "delete_relations",
			args: `{"relations": [{"from": "bob", "to": "carol", "relationType": "knows"},
				{"from": "carol", "to": "bob", "relationType": "knows"},
				{"from": "carol", "to": "alice", "relationType": "likes"}]}`,
			during: func(t *testing.T, g graph) {
				if len(g.Relations) != 1 {
					t.Errorf("after delete_relations: %+v", g.Relations)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seed(t, file, base)
			before := readGraph(t, s)
			st := s.do(t, tt.tool, tt.args)
			if tt.during != nil {
				tt.during(t, readGraph(t, s))
			}
			if err := st.undo(); err != nil {
				t.Fatal(err)
			}
			after := readGraph(t, s)
			if !tt.exact {
				before, after = sorted(before), sorted(after)
			}
			if diff := cmp.Diff(before, after); diff != "" {
				t.Errorf("graph after undoing %s (-before +after):\n%s", tt.tool, diff)
			}
		})
	}

	// A saga of every write tool, undone in reverse order.
	t.Run("saga undone in reverse order", func(t *testing.T) {
		seed(t, file, base)
		before := readGraph(t, s)
		steps := []*step{
			s.do(t, "create_entities", `{"entities": [{"name": "dave", "entityType": "person", "observations": []}, {"name": "alice", "entityType": "person", "observations": []}]}`),
			s.do(t, "create_relations", `{"relations": [{"from": "dave", "to": "alice", "relationType": "knows"}]}`),
			s.do(t, "add_observations", `{"observations": [{"entityName": "dave", "contents": ["new"]}, {"entityName": "alice", "contents": ["likes tea", "new"]}]}`),
			s.do(t, "delete_observations", `{"deletions": [{"entityName": "alice", "observations": ["likes tea", "new"]}]}`),
			s.do(t, "delete_relations", `{"relations": [{"from": "dave", "to": "alice", "relationType": "knows"}, {"from": "alice", "to": "bob", "relationType": "knows"}]}`),
			s.do(t, "delete_entities", `{"entityNames": ["alice", "dave"]}`),
		}
		if g := readGraph(t, s); len(g.Entities) != 2 {
			t.Fatalf("after the saga: %+v", g)
		}
		for i := len(steps) - 1; i >= 0; i-- {
			if err := steps[i].undo(); err != nil {
				t.Fatalf("step %d: %v", i+1, err)
			}
		}
		if diff := cmp.Diff(sorted(before), sorted(readGraph(t, s))); diff != "" {
			t.Errorf("graph after undoing the saga (-before +after):\n%s", diff)
		}
	})
}
