package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/internal/syncbuf"
	"github.com/agenthelm/agenthelm/internal/testservers"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer = syncbuf.Buffer

// sidecarProc runs `agenthelm serve` in-process through run().
type sidecarProc struct {
	stderr *syncBuffer
	cancel context.CancelFunc
	done   chan error
	mcp    string
	admin  string
	http   string // the HTTP tool proxy, when it listens
	config string
}

func startServe(t *testing.T, configYAML string) *sidecarProc {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "agenthelm.yaml")
	if err := os.WriteFile(cfgPath, []byte(strings.ReplaceAll(configYAML, "$DIR", dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sp := &sidecarProc{stderr: &syncBuffer{}, cancel: cancel, done: make(chan error, 1), config: cfgPath}
	go func() {
		sp.done <- run(ctx, []string{"serve", "--config", cfgPath, "--log-format", "json"}, strings.NewReader(""), &bytes.Buffer{}, sp.stderr)
	}()
	re := regexp.MustCompile(`"msg":"listening","listener":"(\w+)","addr":"([^"]+)"`)
	deadline := time.Now().Add(30 * time.Second)
	for sp.mcp == "" || sp.admin == "" {
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start: %s", sp.stderr.String())
		}
		select {
		case err := <-sp.done:
			t.Fatalf("serve exited: %v\n%s", err, sp.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		for _, m := range re.FindAllStringSubmatch(sp.stderr.String(), -1) {
			switch m[1] {
			case "mcp":
				sp.mcp = m[2]
			case "admin":
				sp.admin = m[2]
			case "http":
				sp.http = m[2]
			}
		}
	}
	t.Cleanup(func() { sp.stop(t) })
	return sp
}

func (sp *sidecarProc) stop(t *testing.T) {
	if sp.cancel == nil {
		return
	}
	sp.cancel()
	sp.cancel = nil
	select {
	case err := <-sp.done:
		if err != nil {
			t.Errorf("serve returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("serve did not stop")
	}
}

// cli runs an agenthelm command against the sidecar's config.
func (sp *sidecarProc) cli(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	args = append(args, "--config", sp.config)
	if err := run(context.Background(), args, strings.NewReader(""), &out, &errb); err != nil {
		t.Fatalf("agenthelm %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

func connect(t *testing.T, url string) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "e2e-agent", Version: "1"}, nil).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func callTool(t *testing.T, cs *mcp.ClientSession, name string, args any) *mcp.CallToolResult {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return res
}

func graph(t *testing.T, cs *mcp.ClientSession) string {
	t.Helper()
	res := callTool(t, cs, "read_graph", map[string]any{})
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

func memoryConfig(t *testing.T) string {
	cmd, _ := json.Marshal(testservers.Memory(t))
	return fmt.Sprintf(`
listen: {mcp: 127.0.0.1:0, admin: 127.0.0.1:0}
journal: {dir: $DIR/data}
policy: {mode: dry-run}
saga: {idle_commit: 1h}
upstreams:
  memory:
    command: %s
    env: {MEMORY_FILE_PATH: $DIR/memory.jsonl}
    tools:
      create_entities:
        compensate: {tool: delete_entities, args: '{entityNames: [.args.entities[].name]}'}
      read_graph: {read_only: true}
`, cmd)
}

// TestServeUnwindsRealServerMemory drives the real server-memory through
// `agenthelm serve`: a failing call undoes the entities the saga created,
// and the CLI shows the saga through the admin API.
func TestServeUnwindsRealServerMemory(t *testing.T) {
	sp := startServe(t, memoryConfig(t))
	cs := connect(t, "http://"+sp.mcp+"/mcp/memory")
	before := graph(t, cs)

	callTool(t, cs, "create_entities", map[string]any{"entities": []map[string]any{
		{"name": "alice", "entityType": "person", "observations": []string{"likes tea"}},
		{"name": "bob", "entityType": "person", "observations": []string{}},
	}})
	if g := graph(t, cs); !strings.Contains(g, "alice") {
		t.Fatalf("graph after create = %s", g)
	}
	// A call the server rejects: its arguments are invalid.
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "delete_entities", Arguments: map[string]any{"entityNames": "not-a-list"}})
	if err == nil && !res.IsError {
		t.Fatalf("invalid call succeeded: %+v", res)
	}
	if g := graph(t, cs); g != before {
		t.Errorf("graph after rollback = %s, want as before the saga: %s", g, before)
	}

	list := sp.cli(t, "sagas", "list")
	if !strings.Contains(list, "compensated") {
		t.Errorf("sagas list = %q, want a compensated saga", list)
	}
	var heads []struct{ Saga, Status string }
	if err := json.Unmarshal([]byte(sp.cli(t, "sagas", "list", "--status", "compensated", "--json")), &heads); err != nil || len(heads) != 1 {
		t.Fatalf("sagas list --status compensated --json = %v, %v; want one saga", heads, err)
	}
	show := sp.cli(t, "sagas", "show", heads[0].Saga)
	for _, want := range []string{"memory/create_entities", "delete_entities", "compensated"} {
		if !strings.Contains(show, want) {
			t.Errorf("sagas show lacks %q:\n%s", want, show)
		}
	}
}

// TestRollbackCommittedSagaOffline commits a saga, stops the sidecar, and
// undoes the run with `sagas rollback` on the journal directly.
func TestRollbackCommittedSagaOffline(t *testing.T) {
	sp := startServe(t, memoryConfig(t))
	cs := connect(t, "http://"+sp.mcp+"/mcp/memory")
	before := graph(t, cs)
	callTool(t, cs, "create_entities", map[string]any{"entities": []map[string]any{{"name": "carol", "entityType": "person", "observations": []string{}}}})
	cs.Close()
	sp.stop(t)

	var heads []struct{ Saga, Status string }
	if err := json.Unmarshal([]byte(sp.cli(t, "sagas", "list", "--json")), &heads); err != nil || len(heads) != 1 {
		t.Fatalf("sagas list --json = %v, %v", heads, err)
	}
	out := sp.cli(t, "sagas", "rollback", heads[0].Saga, "--reason", "bad run")
	if !strings.Contains(out, "compensated") {
		t.Fatalf("rollback output:\n%s", out)
	}
	// Read the graph straight from the server, without agenthelm.
	direct, err := mcp.NewClient(&mcp.Implementation{Name: "direct", Version: "1"}, nil).Connect(context.Background(),
		&mcp.CommandTransport{Command: memoryCommand(t, filepath.Join(filepath.Dir(sp.config), "memory.jsonl"))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	if g := graph(t, direct); g != before {
		t.Errorf("graph after offline rollback = %s, want %s", g, before)
	}
}

func memoryCommand(t *testing.T, file string) *exec.Cmd {
	argv := testservers.Memory(t)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), testservers.MemoryEnv(file))
	return cmd
}
