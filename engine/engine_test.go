package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/engine"
	"github.com/agenthelm/agenthelm/journal"
	"github.com/agenthelm/agenthelm/proxy"
	"github.com/agenthelm/agenthelm/proxy/upstream"
	"github.com/agenthelm/agenthelm/saga"
	"github.com/agenthelm/agenthelm/telemetry"
	"github.com/agenthelm/agenthelm/toolcall"
	"github.com/itchyny/gojq"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// ledger is a tool server's record of what it did, keyed by idempotency
// key, so tests can prove what ran and how often.
type ledger struct {
	mu      sync.Mutex
	items   map[string]bool
	ops     []string
	seen    map[string]string // idempotency key -> result
	failDel int               // fail this many delete calls first
}

func (l *ledger) snapshot() ([]string, map[string]bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	items := map[string]bool{}
	for k, v := range l.items {
		items[k] = v
	}
	return append([]string(nil), l.ops...), items
}

// itemServer is an MCP server (official SDK, streamable HTTP on
// 127.0.0.1) with create/delete tools that honour idempotency keys, and a
// tool that always fails.
func itemServer(t *testing.T) (*httptest.Server, *ledger) {
	led := &ledger{items: map[string]bool{}, seen: map[string]string{}}
	srv := mcp.NewServer(&mcp.Implementation{Name: "items", Version: "1"}, nil)
	type nameArgs struct {
		Name     string `json:"name"`
		Password string `json:"password,omitempty"`
		Amount   int    `json:"amount,omitempty"`
	}
	key := func(req *mcp.CallToolRequest) string {
		if m := req.Params.Meta; m != nil {
			if k, ok := m[engine.MetaIdempotencyKey].(string); ok {
				return k
			}
		}
		return ""
	}
	text := func(s string) *mcp.CallToolResult {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "create"}, func(ctx context.Context, req *mcp.CallToolRequest, in nameArgs) (*mcp.CallToolResult, any, error) {
		led.mu.Lock()
		defer led.mu.Unlock()
		if k := key(req); k != "" && led.seen[k] != "" {
			return text(led.seen[k]), nil, nil
		}
		led.items[in.Name] = true
		led.ops = append(led.ops, "create "+in.Name)
		led.seen[key(req)] = "created " + in.Name
		return text("created " + in.Name), nil, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "delete"}, func(ctx context.Context, req *mcp.CallToolRequest, in nameArgs) (*mcp.CallToolResult, any, error) {
		led.mu.Lock()
		defer led.mu.Unlock()
		if led.failDel > 0 {
			led.failDel--
			return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "temporarily unavailable"}}}, nil, nil
		}
		if k := key(req); k != "" && led.seen[k] != "" {
			return text(led.seen[k]), nil, nil
		}
		delete(led.items, in.Name)
		led.ops = append(led.ops, "delete "+in.Name)
		led.seen[key(req)] = "deleted " + in.Name
		return text("deleted " + in.Name), nil, nil
	})
	slow := 0
	mcp.AddTool(srv, &mcp.Tool{Name: "slowonce"}, func(ctx context.Context, req *mcp.CallToolRequest, in nameArgs) (*mcp.CallToolResult, any, error) {
		led.mu.Lock()
		slow++
		first := slow == 1
		led.ops = append(led.ops, "slowonce "+key(req))
		led.mu.Unlock()
		if first {
			time.Sleep(400 * time.Millisecond) // the proxy gives up first
		}
		return text("done"), nil, nil
	})
	// confirm creates like create, but first asks the client for input
	// (2026-07-28 multi round-trip) when the call carries no answer.
	mcp.AddTool(srv, &mcp.Tool{Name: "confirm"}, func(ctx context.Context, req *mcp.CallToolRequest, in nameArgs) (*mcp.CallToolResult, any, error) {
		if len(req.Params.InputResponses) == 0 || req.Params.RequestState != "upstream-state" {
			return &mcp.CallToolResult{
				InputRequests: mcp.InputRequestMap{"sure": &mcp.ElicitParams{Message: "create " + in.Name + "?",
					RequestedSchema: map[string]any{"type": "object", "properties": map[string]any{"ok": map[string]any{"type": "boolean"}}}}},
				RequestState: "upstream-state",
			}, nil, nil
		}
		led.mu.Lock()
		defer led.mu.Unlock()
		led.items[in.Name] = true
		led.ops = append(led.ops, "confirm "+in.Name)
		return text("created " + in.Name), nil, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "fail"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "mailbox unavailable"}}}, nil, nil
	})
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{Stateless: true}))
	t.Cleanup(ts.Close)
	return ts, led
}

type rules map[string]engine.Rule

func (r rules) Rule(upstream, tool string) engine.Rule { return r[tool] }

func jqEval(expr string, args, result, capture json.RawMessage) (json.RawMessage, error) {
	q, err := gojq.Parse(expr)
	if err != nil {
		return nil, err
	}
	in := map[string]any{}
	for k, raw := range map[string]json.RawMessage{"args": args, "result": result, "capture": capture} {
		var v any
		if len(raw) > 0 {
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, err
			}
		}
		in[k] = v
	}
	v, ok := q.Run(in).Next()
	if !ok {
		return nil, fmt.Errorf("no output")
	}
	if err, isErr := v.(error); isErr {
		return nil, err
	}
	return json.Marshal(v)
}

type stack struct {
	j      *journal.Journal
	e      *engine.Engine
	p      *proxy.Proxy
	url    string
	led    *ledger
	client *mcp.ClientSession
}

func logger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func start(t *testing.T, dir string, policy saga.Policy) *stack {
	return startWith(t, dir, policy, jqEval)
}

func startWith(t *testing.T, dir string, policy saga.Policy, eval engine.Evaluator) *stack {
	undo := &saga.Compensator{Tool: "delete", Args: "{name: .args.name}"}
	return newStack(t, dir, engine.Options{Eval: eval, Retry: policy,
		Rules: rules{"create": {Compensate: undo}, "fail": {Irreversible: true}}}, proxy.Options{})
}

// newStack runs the real engine over a synced journal in dir (a temporary
// one when empty), behind a real proxy, in front of the item server, with
// an official-SDK client connected. eo and po are completed with the
// journal, invoker, upstream and interceptor; zero fields get test
// defaults (jq evaluation, no idle commit within a test).
func newStack(t *testing.T, dir string, eo engine.Options, po proxy.Options) *stack {
	t.Helper()
	ctx := context.Background()
	if dir == "" {
		dir = t.TempDir()
	}
	up, led := itemServer(t)
	j, err := journal.Open(ctx, journal.Options{Dir: dir, Sync: true, Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	var p *proxy.Proxy
	if w, ok := eo.Journal.(journalWrapper); ok {
		eo.Journal = w(j)
	} else {
		eo.Journal = j
	}
	eo.Invoker = invoker{&p}
	if eo.Eval == nil {
		eo.Eval = jqEval
	}
	if eo.Logger == nil {
		eo.Logger = logger()
	}
	if eo.IdleCommit == 0 {
		eo.IdleCommit = time.Hour
	}
	e := engine.New(eo)
	po.Upstreams = map[string]upstream.Spec{"items": {Name: "items", URL: up.URL, Transport: "streamable-http"}}
	if po.Interceptor == nil {
		po.Interceptor = e
	} else if w, ok := po.Interceptor.(wrapper); ok {
		po.Interceptor = w(e)
	}
	if po.Logger == nil {
		po.Logger = logger()
	}
	p = proxy.New(po)
	if err := e.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(p.Handler())
	st := &stack{j: j, e: e, p: p, url: ts.URL + "/mcp/items", led: led}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: st.url}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	st.client = cs
	t.Cleanup(func() {
		cs.Close()
		ts.Close()
		p.Close(ctx)
		e.Close(ctx)
		j.Close(ctx)
	})
	return st
}

// wrapper, given as proxy.Options.Interceptor to newStack, decorates the
// engine (for example with telemetry).
type wrapper func(toolcall.Interceptor) toolcall.Interceptor

// journalWrapper, passed as Options.Journal, is a recipe for newStack: it
// wraps the stack's real journal (to count its reads, say).
type journalWrapper func(*journal.Journal) engine.Journal

func (w journalWrapper) Enqueue(context.Context, journal.Batch) (*journal.Pending, error) {
	panic("a journalWrapper is only a recipe for newStack")
}
func (w journalWrapper) Events(context.Context, string) ([]journal.Event, error) { panic("recipe") }
func (w journalWrapper) NonTerminal(context.Context) ([]journal.Head, error)     { panic("recipe") }
func (w journalWrapper) Head(context.Context, string) (journal.Head, error)      { panic("recipe") }

func (w wrapper) InterceptToolCall(context.Context, *toolcall.Call, toolcall.Forward) (toolcall.Result, error) {
	panic("a wrapper is only a recipe for newStack")
}

// invoker resolves the proxy lazily: engine and proxy need each other.
type invoker struct{ p **proxy.Proxy }

func (i invoker) Invoke(ctx context.Context, up, session, method string, params json.RawMessage) (toolcall.Result, error) {
	return (*i.p).Invoke(ctx, up, session, method, params)
}

func (s *stack) call(t *testing.T, tool string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	res, err := s.client.CallTool(context.Background(), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("call %s: %v", tool, err)
	}
	return res
}

func only(t *testing.T, j *journal.Journal) journal.Head {
	t.Helper()
	heads, err := j.List(context.Background(), journal.Filter{})
	if err != nil || len(heads) != 1 {
		t.Fatalf("journal lists %d sagas (%v), want 1", len(heads), err)
	}
	return heads[0]
}

func TestFailedStepUnwindsInReverseOrder(t *testing.T) {
	s := start(t, t.TempDir(), saga.Policy{})
	s.call(t, "create", map[string]any{"name": "a"})
	s.call(t, "create", map[string]any{"name": "b"})
	res := s.call(t, "fail", nil)

	ops, items := s.led.snapshot()
	if got, want := strings.Join(ops, ", "), "create a, create b, delete b, delete a"; got != want {
		t.Errorf("upstream ran %q, want %q", got, want)
	}
	if len(items) != 0 {
		t.Errorf("items left after rollback: %v", items)
	}
	if !res.IsError {
		t.Error("the failing call's answer lost isError")
	}
	var texts []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			texts = append(texts, tc.Text)
		}
	}
	all := strings.Join(texts, "\n")
	if !strings.Contains(all, "mailbox unavailable") || !strings.Contains(all, "step 2 create (undone by delete); step 1 create (undone by delete)") {
		t.Errorf("answer text = %q, want the original error and the rollback summary", all)
	}
	if res.Meta[engine.MetaRollback] == nil {
		t.Errorf("answer _meta = %v, want %s", res.Meta, engine.MetaRollback)
	}
	h := only(t, s.j)
	if h.Status != string(saga.Compensated) || h.Steps != 3 || !h.Terminal {
		t.Errorf("journal head = %+v, want compensated with 3 steps", h)
	}
}

func TestOperatorRollbackOfCommittedSaga(t *testing.T) {
	s := start(t, t.TempDir(), saga.Policy{})
	s.call(t, "create", map[string]any{"name": "x"})
	h := only(t, s.j)
	if _, err := s.e.Commit(context.Background(), h.Saga, "test"); err != nil {
		t.Fatal(err)
	}
	got, err := s.e.Rollback(context.Background(), h.Saga, "operator:test", "")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != saga.Compensated {
		t.Errorf("after rollback saga is %s, want compensated", got.Status)
	}
	if ops, _ := s.led.snapshot(); strings.Join(ops, ", ") != "create x, delete x" {
		t.Errorf("upstream ran %v", ops)
	}
	// The next call starts a new saga: the old one is finished.
	s.call(t, "create", map[string]any{"name": "y"})
	heads, _ := s.j.List(context.Background(), journal.Filter{})
	if len(heads) != 2 {
		t.Errorf("journal has %d sagas, want 2", len(heads))
	}
}

func TestCompensationRetriesThenSucceedsWithOneKey(t *testing.T) {
	s := start(t, t.TempDir(), saga.Policy{MaxAttempts: 5, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	s.led.mu.Lock()
	s.led.failDel = 2
	s.led.mu.Unlock()
	s.call(t, "create", map[string]any{"name": "a"})
	s.call(t, "fail", nil)
	// The first attempt failed within the call; retries run on a timer.
	h := only(t, s.j)
	deadline := time.Now().Add(10 * time.Second)
	for h.Status != string(saga.Compensated) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		h = only(t, s.j)
	}
	if h.Status != string(saga.Compensated) {
		t.Fatalf("saga is %s, want compensated after retries", h.Status)
	}
	sg, err := s.e.Load(context.Background(), h.Saga)
	if err != nil {
		t.Fatal(err)
	}
	if a := sg.Step(1).Comp.Attempts; a != 3 {
		t.Errorf("compensation took %d attempts, want 3", a)
	}
	if ops, _ := s.led.snapshot(); strings.Join(ops, ", ") != "create a, delete a" {
		t.Errorf("upstream ran %v, want one delete", ops)
	}
}

func TestStuckAfterMaxAttempts(t *testing.T) {
	s := start(t, t.TempDir(), saga.Policy{MaxAttempts: 2, InitialBackoff: 5 * time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	s.led.mu.Lock()
	s.led.failDel = 100
	s.led.mu.Unlock()
	s.call(t, "create", map[string]any{"name": "a"})
	s.call(t, "fail", nil)
	h := only(t, s.j)
	deadline := time.Now().Add(10 * time.Second)
	for h.Status != string(saga.Stuck) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		h = only(t, s.j)
	}
	if h.Status != string(saga.Stuck) || h.Terminal {
		t.Fatalf("saga head = %+v, want stuck and not terminal", h)
	}
	s.led.mu.Lock()
	s.led.failDel = 0
	s.led.mu.Unlock()
	got, err := s.e.Retry(context.Background(), h.Saga, "operator:test")
	if err != nil || got.Status != saga.Compensated {
		t.Fatalf("retry = %v, %v; want compensated", got, err)
	}
}

func TestCannotUndoNeedsHumanAtOnce(t *testing.T) {
	cannot := func(expr string, args, result, capture json.RawMessage) (json.RawMessage, error) {
		return nil, fmt.Errorf("%w: the file did not exist before", engine.ErrCannotUndo)
	}
	s := startWith(t, t.TempDir(), saga.Policy{MaxAttempts: 5}, cannot)
	s.call(t, "create", map[string]any{"name": "a"})
	s.call(t, "fail", nil)
	h := only(t, s.j)
	if h.Status != string(saga.NeedsHuman) {
		t.Fatalf("saga is %s, want needs_human", h.Status)
	}
	sg, _ := s.e.Load(context.Background(), h.Saga)
	if st := sg.Step(1).Comp; st.Status != saga.CompNeedsHuman || st.Attempts > 1 {
		t.Errorf("step 1 compensation = %+v, want needs_human after one attempt", st)
	}
	if ops, _ := s.led.snapshot(); strings.Join(ops, ", ") != "create a" {
		t.Errorf("upstream ran %v, want no compensation call", ops)
	}
}

func TestControlTools(t *testing.T) {
	ctx := context.Background()
	s := newStack(t, "", engine.Options{ControlTools: true,
		Rules: rules{"create": {Compensate: &saga.Compensator{Tool: "delete", Args: "{name: .args.name}"}}}},
		proxy.Options{ExtraTools: engine.ControlTools})
	cs, j, led := s.client, s.j, s.led

	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	if got := strings.Join(names, ","); !strings.Contains(got, "create") || !strings.HasSuffix(got, "agenthelm_commit,agenthelm_rollback") {
		t.Fatalf("tools/list = %s, want the upstream's tools and the control tools", got)
	}
	s.call(t, "create", map[string]any{"name": "a"})
	res := s.call(t, engine.ToolRollback, map[string]any{"reason": "wrong customer"})
	if res.IsError || res.Meta[engine.MetaRollback] == nil {
		t.Errorf("rollback answer = %+v", res)
	}
	s.call(t, "create", map[string]any{"name": "b"})
	if res := s.call(t, engine.ToolCommit, nil); res.IsError {
		t.Errorf("commit answer is an error")
	}
	ops, items := led.snapshot()
	if strings.Join(ops, ", ") != "create a, delete a, create b" || !items["b"] {
		t.Errorf("upstream ran %v, items %v", ops, items)
	}
	heads, _ := j.List(ctx, journal.Filter{})
	var st []string
	for _, h := range heads {
		st = append(st, h.Status)
	}
	if strings.Join(st, ",") != "committed,compensated" {
		t.Errorf("sagas = %v, want one committed (newest) and one compensated", st)
	}
}

func TestIdempotentCallRetriedWithTheSameKey(t *testing.T) {
	ctx := context.Background()
	s := newStack(t, "", engine.Options{
		Rules: rules{"slowonce": {Idempotent: true, ReadOnly: true, Retry: &engine.Retry{Attempts: 3, Backoff: 10 * time.Millisecond}}}},
		proxy.Options{CallTimeout: 150 * time.Millisecond})
	e, j, led := s.e, s.j, s.led
	if res := s.call(t, "slowonce", map[string]any{"name": "a"}); res.IsError {
		t.Fatalf("retried call failed: %q", text(res))
	}
	ops, _ := led.snapshot()
	if len(ops) != 2 || ops[0] != ops[1] || !strings.HasPrefix(ops[0], "slowonce ah-") {
		t.Errorf("upstream saw %v, want the call twice with one idempotency key", ops)
	}
	sg, _ := e.Load(ctx, only(t, j).Saga)
	if st := sg.Step(1); st == nil || st.Status != saga.Succeeded {
		t.Errorf("step = %+v, want succeeded after the retry", st)
	}
}

// TestSecretsAreMaskedInTheJournal: a masked argument never reaches the
// disk, and the undo that needs it still gets the real value while
// agenthelm runs.
func TestSecretsAreMaskedInTheJournal(t *testing.T) {
	ctx := context.Background()
	red := telemetry.DefaultRedactor()
	s := newStack(t, "", engine.Options{Redact: red.Member,
		Rules: rules{"create": {Compensate: &saga.Compensator{Tool: "delete", Args: "{name: .args.name}"}}, "fail": {Irreversible: true}}},
		proxy.Options{})
	j, led := s.j, s.led
	s.call(t, "create", map[string]any{"name": "a", "password": "hunter2-secret"})
	s.call(t, "fail", nil)
	if ops, items := led.snapshot(); strings.Join(ops, ", ") != "create a, delete a" || len(items) != 0 {
		t.Errorf("upstream ran %v, items %v", ops, items)
	}
	evs, _ := j.Events(ctx, only(t, j).Saga)
	var all strings.Builder
	for _, ev := range evs {
		all.Write(ev.Body)
	}
	if strings.Contains(all.String(), "hunter2") {
		t.Errorf("the journal holds the secret:\n%s", all.String())
	}
	if !strings.Contains(all.String(), "[REDACTED]") {
		t.Errorf("the journal holds no masked value")
	}
}
