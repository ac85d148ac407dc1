package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/internal/testservers"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestWrapStandaloneIsOneSagaPerProcess runs `agenthelm wrap -- server-memory`
// as an agent would, over pipes: a failing call unwinds what the process's
// saga created, and the journal lives in a directory derived from the
// command.
func TestWrapStandaloneIsOneSagaPerProcess(t *testing.T) {
	dir := t.TempDir()
	cmd, _ := json.Marshal(testservers.Memory(t))
	cfgPath := filepath.Join(dir, "agenthelm.yaml")
	cfg := fmt.Sprintf(`
journal: {dir: %s/data}
policy: {mode: dry-run}
upstreams:
  memory:
    command: %s
    env: {MEMORY_FILE_PATH: %s/memory.jsonl}
    tools:
      create_entities:
        compensate: {tool: delete_entities, args: '{entityNames: [.args.entities[].name]}'}
`, dir, cmd, dir)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		argv := append([]string{"wrap", "--config", cfgPath, "--name", "memory", "--"}, testservers.Memory(t)...)
		done <- run(context.Background(), argv, inR, outW, &stderr)
		outW.Close()
	}()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "wrap-agent", Version: "1"}, nil).
		Connect(context.Background(), &mcp.IOTransport{Reader: outR, Writer: inW}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatalf("connect through wrap: %v\n%s", err, stderr.String())
	}
	before := graph(t, cs)
	callTool(t, cs, "create_entities", map[string]any{"entities": []map[string]any{{"name": "dave", "entityType": "person", "observations": []string{}}}})
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "delete_entities", Arguments: map[string]any{"entityNames": 7}})
	if err == nil && !res.IsError {
		t.Fatal("invalid call succeeded")
	}
	if g := graph(t, cs); g != before {
		t.Errorf("graph after rollback = %s, want %s", g, before)
	}
	cs.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("wrap returned %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("wrap did not exit after its stdin closed")
	}
	journals, _ := filepath.Glob(filepath.Join(dir, "data", "wrap", "memory-*"))
	if len(journals) != 1 {
		t.Errorf("wrap journals = %v, want one directory derived from the command", journals)
	}
	if !strings.Contains(stderr.String(), "saga committed") {
		// The second saga (the read_graph after the rollback) ends with the process.
		t.Errorf("the process's last saga was not committed at exit:\n%s", stderr.String())
	}
}

func TestNameFromCommand(t *testing.T) {
	tests := map[string][]string{
		"server-memory":     {"npx", "-y", "@modelcontextprotocol/server-memory"},
		"server-everything": {"node", "/x/node_modules/@modelcontextprotocol/server-everything/dist/index.js", "stdio"},
		"mcp-server-git":    {"uvx", "mcp-server-git@1.2.3"},
		"weather":           {"./bin/weather"},
		"tool":              {"python3", "/opt/tool/main.py"},
	}
	for want, argv := range tests {
		if got := nameFromCommand(argv); got != want {
			t.Errorf("nameFromCommand(%q) = %q, want %q", argv, got, want)
		}
	}
}
