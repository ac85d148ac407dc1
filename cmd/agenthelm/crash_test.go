package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// faultBinary builds agenthelm with the crash switch (-tags faultinject)
// once per test run.
var faultBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "agenthelm-fault-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "agenthelm")
	out, err := exec.Command("go", "build", "-tags", "faultinject", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build: %v\n%s", err, out)
	}
	return bin, nil
})

// crashLedger is a tool server's record, kept in the test process, which
// outlives the proxy: how often each idempotency key arrived and ran.
type crashLedger struct {
	mu       sync.Mutex
	received map[string]int
	executed map[string]int
	items    map[string]bool
}

func crashUpstream(t *testing.T) (*httptest.Server, *crashLedger) {
	led := &crashLedger{received: map[string]int{}, executed: map[string]int{}, items: map[string]bool{}}
	srv := mcp.NewServer(&mcp.Implementation{Name: "ledger", Version: "1"}, nil)
	type nameArgs struct {
		Name string `json:"name"`
	}
	handle := func(op string) func(context.Context, *mcp.CallToolRequest, nameArgs) (*mcp.CallToolResult, any, error) {
		return func(_ context.Context, req *mcp.CallToolRequest, in nameArgs) (*mcp.CallToolResult, any, error) {
			key, _ := req.Params.Meta["io.agenthelm/idempotency-key"].(string)
			led.mu.Lock()
			defer led.mu.Unlock()
			led.received[op+" "+key]++
			if led.executed[op+" "+key] == 0 { // idempotency: a key runs once
				led.executed[op+" "+key]++
				if op == "create" {
					led.items[in.Name] = true
				} else {
					delete(led.items, in.Name)
				}
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: op + " " + in.Name}}}, nil, nil
		}
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "create"}, handle("create"))
	mcp.AddTool(srv, &mcp.Tool{Name: "delete"}, handle("delete"))
	mcp.AddTool(srv, &mcp.Tool{Name: "fail"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "failed on purpose"}}}, nil, nil
	})
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	t.Cleanup(ts.Close)
	return ts, led
}

// proc is an agenthelm serve process.
type proc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	mcp    string
	exited chan struct{} // closed when the process has exited
	err    error         // its Wait error, once exited is closed
}

func startProc(t *testing.T, bin, cfgPath, crashAt string) *proc {
	t.Helper()
	p := &proc{stderr: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, "serve", "--config", cfgPath, "--log-format", "json")
	p.cmd.Env = append(os.Environ(), "AGENTHELM_CRASH_AT="+crashAt)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
		}
	})
	re := regexp.MustCompile(`"msg":"listening","listener":"mcp","addr":"([^"]+)"`)
	deadline := time.Now().Add(30 * time.Second)
	for p.mcp == "" {
		if m := re.FindStringSubmatch(p.stderr.String()); m != nil {
			p.mcp = m[1]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agenthelm did not start:\n%s", p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

// TestCrashAtEachBoundary kills agenthelm with SIGKILL at each boundary of
// CORRECTNESS rule 28 and restarts it: every saga must end committed,
// compensated, needs_human or stuck, no non-idempotent call may run twice,
// and every compensation runs at most once per idempotency key.
func TestCrashAtEachBoundary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a fault-injection binary")
	}
	bin, err := faultBinary()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		crashAt string
		// forget: the restarted agenthelm's configuration no longer names
		// the upstream; recovery must reach it as the journal recorded it
		// (rule 29).
		forget bool
	}{
		{"before-intent:2", false},
		{"after-intent:2", false},
		{"after-send:2", false},
		{"mid-unwind:1", false},
		{"after-compensate:1", false},
		{"after-compensate:2", false},
		{"after-send:2", true},
	}
	for _, tc := range cases {
		name := strings.ReplaceAll(tc.crashAt, ":", "#")
		if tc.forget {
			name += "/upstream-removed-from-config"
		}
		t.Run(name, func(t *testing.T) {
			up, led := crashUpstream(t)
			dir := t.TempDir()
			cfgPath := filepath.Join(dir, "agenthelm.yaml")
			cfg := fmt.Sprintf(`
listen: {mcp: 127.0.0.1:0, admin: 127.0.0.1:0}
journal: {dir: %s/data}
policy: {mode: dry-run}
saga: {idle_commit: 1h, open_grace: 1s, compensation: {initial_backoff: 100ms, max_backoff: 200ms}}
upstreams:
  items:
    url: %s
    tools:
      create: {compensate: {tool: delete, args: '{name: .args.name}'}}
      fail: {irreversible: true}
`, dir, up.URL)
			if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}

			p := startProc(t, bin, cfgPath, tc.crashAt)
			cs, err := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil).Connect(context.Background(),
				&mcp.StreamableClientTransport{Endpoint: "http://" + p.mcp + "/mcp/items"}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
			if err != nil {
				t.Fatal(err)
			}
			calls := []struct {
				tool string
				args any
			}{{"create", map[string]any{"name": "a"}}, {"create", map[string]any{"name": "b"}}, {"fail", map[string]any{}}}
			for _, c := range calls {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: c.tool, Arguments: c.args})
				cancel()
				if err != nil {
					break // the proxy died under the call
				}
			}
			cs.Close()
			select {
			case <-p.exited:
				err := p.err
				if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
					t.Fatalf("agenthelm exited with %v, want killed at %s:\n%s", err, tc.crashAt, p.stderr.String())
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("agenthelm did not crash at %s:\n%s", tc.crashAt, p.stderr.String())
			}

			// Restart without the crash switch: recovery must finish the job.
			if tc.forget {
				cfg = cfg[:strings.Index(cfg, "upstreams:")]
				if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			p2 := startProc(t, bin, cfgPath, "")
			final := waitSettled(t, cfgPath, p2)
			for id, st := range final {
				switch st {
				case "committed", "compensated", "needs_human", "stuck":
				default:
					t.Errorf("saga %s ended %s", id, st)
				}
			}
			led.mu.Lock()
			defer led.mu.Unlock()
			for key, n := range led.received {
				if strings.HasPrefix(key, "create ") && n > 1 {
					t.Errorf("non-idempotent %q was forwarded %d times", key, n)
				}
			}
			for key, n := range led.executed {
				if n > 1 {
					t.Errorf("%q ran %d times", key, n)
				}
			}
			if len(led.items) != 0 {
				t.Errorf("items left after recovery: %v (sagas %v)", led.items, final)
			}
		})
	}
}

// waitSettled polls the sidecar's sagas until none is open or aborting.
func waitSettled(t *testing.T, cfgPath string, p *proc) map[string]string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var out, errb bytes.Buffer
		if err := run(context.Background(), []string{"sagas", "list", "--json", "--config", cfgPath}, strings.NewReader(""), &out, &errb); err != nil {
			t.Fatalf("sagas list: %v %s", err, errb.String())
		}
		var heads []struct{ Saga, Status string }
		if err := json.Unmarshal(out.Bytes(), &heads); err != nil {
			t.Fatalf("sagas list: %v", err)
		}
		settled := len(heads) > 0
		final := map[string]string{}
		for _, h := range heads {
			final[h.Saga] = h.Status
			if h.Status == "open" || h.Status == "aborting" {
				settled = false
			}
		}
		if settled {
			return final
		}
		if time.Now().After(deadline) {
			t.Fatalf("sagas did not settle: %v\n%s", final, p.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
