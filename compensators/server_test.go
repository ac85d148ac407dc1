package compensators

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/saga"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// server is a real MCP server over stdio, driven the way the saga engine
// drives it: capture, forward call, then the compensation's calls.
type server struct {
	cs  *mcp.ClientSession
	set *Set
	up  string
}

// startServer runs argv (with extra environment) over stdio and builds the
// rules of upstream up with pack.
func startServer(t *testing.T, up, pack string, argv []string, env ...string) *server {
	t.Helper()
	set, err := New(parse(t, fmt.Sprintf("upstreams:\n  %s: {command: [x], packs: [%s]}\n", up, pack)))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "compensators-test", Version: "1"}, nil).
		Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("start %v: %v", argv, err)
	}
	t.Cleanup(func() { cs.Close() })
	return &server{cs: cs, set: set, up: up}
}

// call calls a tool with raw JSON arguments and returns the result object
// as the upstream sent it. A tool error is a result; a protocol error
// fails the test.
func (s *server) call(t testing.TB, tool string, args json.RawMessage) json.RawMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := s.cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s(%s): %v", tool, args, err)
	}
	raw, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// tools lists the server's tools.
func (s *server) tools(t testing.TB) []string {
	t.Helper()
	res, err := s.cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

// step is one forward call made as the engine makes it.
type step struct {
	t               testing.TB
	s               *server
	tool            string
	rule            Rule
	args            json.RawMessage
	result, capture json.RawMessage
}

// do captures (if the rule says so) and makes the call.
func (s *server) do(t testing.TB, tool, args string) *step {
	t.Helper()
	st := &step{t: t, s: s, tool: tool, rule: s.set.Rule(s.up, tool), args: json.RawMessage(args)}
	if c := st.rule.Capture; c != nil {
		a, err := Eval(c.Args, st.args, nil, nil)
		if err != nil {
			t.Fatalf("%s: capture arguments: %v", tool, err)
		}
		st.capture = s.call(t, c.Tool, a)
	}
	st.result = s.call(t, tool, st.args)
	if isError(st.result) {
		t.Fatalf("%s(%s) failed: %s", tool, args, st.result)
	}
	return st
}

// undo runs the step's compensation calls in order. A compensation that
// does not need the result is built without it, as for a step whose
// outcome is unknown, which proves it does not need it.
func (st *step) undo() error {
	st.t.Helper()
	c := st.rule.Compensate
	if c == nil {
		return fmt.Errorf("%s has no compensator", st.tool)
	}
	result := st.result
	if !c.NeedsResult {
		result = nil
	}
	for _, call := range append([]saga.Call{{Tool: c.Tool, Args: c.Args}}, c.Then...) {
		a, err := Eval(call.Args, st.args, result, st.capture)
		if err != nil {
			return fmt.Errorf("%s: build %s arguments: %w", st.tool, call.Tool, err)
		}
		if res := st.s.call(st.t, call.Tool, a); isError(res) {
			return fmt.Errorf("%s: %s(%s) failed: %s", st.tool, call.Tool, a, res)
		}
	}
	return nil
}

func isError(result json.RawMessage) bool {
	var r struct{ IsError bool }
	_ = json.Unmarshal(result, &r)
	return r.IsError
}
