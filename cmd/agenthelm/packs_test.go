package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agenthelm/agenthelm/internal/testservers"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestServeMemoryPackUnwinds drives the real server-memory through
// `agenthelm serve` with packs: [memory] and no tool rules of its own: a
// saga creates entities (one already existed), relations (one already
// existed) and observations (one duplicate), deletes a relation and an
// observation, then a call fails. Afterwards read_graph is exactly what it
// was before the saga.
func TestServeMemoryPackUnwinds(t *testing.T) {
	file := filepath.Join(t.TempDir(), "memory.jsonl")
	existing := []string{
		`{"type":"entity","name":"alice","entityType":"person","observations":["likes tea"]}`,
		`{"type":"entity","name":"carol","entityType":"person","observations":[]}`,
		`{"type":"relation","from":"alice","to":"carol","relationType":"knows"}`,
	}
	if err := os.WriteFile(file, []byte(strings.Join(existing, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd, _ := json.Marshal(testservers.Memory(t))
	env, _ := json.Marshal(map[string]string{"MEMORY_FILE_PATH": file})
	sp := startServe(t, fmt.Sprintf(`
listen: {mcp: 127.0.0.1:0, admin: 127.0.0.1:0}
journal: {dir: $DIR/data}
policy: {mode: dry-run}
saga: {idle_commit: 1h}
upstreams:
  memory:
    command: %s
    env: %s
    packs: [memory]
`, cmd, env))
	cs := connect(t, "http://"+sp.mcp+"/mcp/memory")
	before := graph(t, cs)
	if !strings.Contains(before, "alice") {
		t.Fatalf("graph before the saga = %s", before)
	}

	ok := func(name string, args any) {
		t.Helper()
		if res := callTool(t, cs, name, args); res.IsError {
			t.Fatalf("%s failed: %+v", name, res.Content)
		}
	}
	type obj = map[string]any
	ok("create_entities", obj{"entities": []obj{
		{"name": "alice", "entityType": "robot", "observations": []string{"other"}},
		{"name": "bob", "entityType": "person", "observations": []string{"new"}},
	}})
	ok("create_relations", obj{"relations": []obj{
		{"from": "alice", "to": "bob", "relationType": "knows"},
		{"from": "alice", "to": "carol", "relationType": "knows"},
	}})
	ok("add_observations", obj{"observations": []obj{
		{"entityName": "alice", "contents": []string{"likes tea", "plays chess"}},
		{"entityName": "bob", "contents": []string{"tall"}},
	}})
	ok("delete_relations", obj{"relations": []obj{{"from": "alice", "to": "carol", "relationType": "knows"}}})
	ok("delete_observations", obj{"deletions": []obj{{"entityName": "alice", "observations": []string{"likes tea"}}}})
	during := graph(t, cs)
	for _, want := range []string{`"bob"`, `"plays chess"`, `"tall"`} {
		if !strings.Contains(during, want) {
			t.Fatalf("graph during the saga lacks %s: %s", want, during)
		}
	}

	// A call the server rejects: its arguments are invalid.
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "delete_entities", Arguments: obj{"entityNames": "not-a-list"}})
	if err == nil && !res.IsError {
		t.Fatalf("invalid call succeeded: %+v", res)
	}
	if err == nil && res.Meta["io.agenthelm/rollback"] == nil {
		t.Errorf("the failed call's result has no rollback report: %+v", res.Meta)
	}
	if g := graph(t, cs); g != before {
		t.Errorf("graph after rollback:\n%s\nwant as before the saga:\n%s", g, before)
	}

	var heads []struct{ Saga, Status string }
	if err := json.Unmarshal([]byte(sp.cli(t, "sagas", "list", "--status", "compensated", "--json")), &heads); err != nil || len(heads) != 1 {
		t.Fatalf("sagas list --status compensated --json = %v, %v; want one saga", heads, err)
	}
	show := sp.cli(t, "sagas", "show", heads[0].Saga)
	for _, want := range []string{"memory/create_entities", "memory/delete_observations", "add_observations", "create_relations"} {
		if !strings.Contains(show, want) {
			t.Errorf("sagas show lacks %q:\n%s", want, show)
		}
	}
}
