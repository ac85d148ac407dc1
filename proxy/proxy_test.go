package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/internal/testservers"
	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
	"github.com/agenthelm/agenthelm/proxy/upstream"
	"github.com/agenthelm/agenthelm/toolcall"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// recorder is an interceptor that records the calls it sees and, when deny
// is set, answers them itself without forwarding.
type recorder struct {
	mu       sync.Mutex
	calls    []toolcall.Call
	forwards int
	deny     func(*toolcall.Call) bool
}

func (r *recorder) InterceptToolCall(ctx context.Context, call *toolcall.Call, forward toolcall.Forward) (toolcall.Result, error) {
	r.mu.Lock()
	r.calls = append(r.calls, *call)
	deny := r.deny != nil && r.deny(call)
	r.mu.Unlock()
	if deny {
		return toolcall.Result{Result: json.RawMessage(`{"content":[{"type":"text","text":"denied by test"}],"isError":true}`)}, nil
	}
	r.mu.Lock()
	r.forwards++
	r.mu.Unlock()
	return forward(ctx, call.Params)
}

func (r *recorder) snapshot() ([]toolcall.Call, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]toolcall.Call(nil), r.calls...), r.forwards
}

func everythingSpec(t *testing.T) upstream.Spec {
	return upstream.Spec{Name: "everything", Command: testservers.Everything(t), Transport: "stdio"}
}

// stdioAgent drives ServeStdio through pipes, like an agent that launched
// `agenthelm wrap`.
type stdioAgent struct {
	t    *testing.T
	in   io.WriteCloser
	out  *bufio.Scanner
	done chan error
}

func startStdio(t *testing.T, p *Proxy, name string) *stdioAgent {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	a := &stdioAgent{t: t, in: inW, out: bufio.NewScanner(outR), done: make(chan error, 1)}
	a.out.Buffer(make([]byte, 1<<20), 16<<20)
	go func() {
		a.done <- p.ServeStdio(context.Background(), name, inR, outW, 5*time.Second)
		outW.Close()
	}()
	t.Cleanup(func() {
		inW.Close()
		select {
		case <-a.done:
		case <-time.After(15 * time.Second):
			t.Error("ServeStdio did not return after stdin closed")
		}
	})
	return a
}

func (a *stdioAgent) send(frame string) {
	a.t.Helper()
	if _, err := io.WriteString(a.in, frame+"\n"); err != nil {
		a.t.Fatalf("write to proxy: %v", err)
	}
}

// recv returns the next frame, skipping notifications unless wanted.
func (a *stdioAgent) recv(skipNotifications bool) *jsonrpc.Message {
	a.t.Helper()
	for a.out.Scan() {
		m, perr := jsonrpc.Parse(a.out.Bytes())
		if perr != nil {
			a.t.Fatalf("proxy wrote an invalid frame %q: %v", a.out.Text(), perr)
		}
		if skipNotifications && m.Kind == jsonrpc.KindNotification {
			continue
		}
		return m
	}
	a.t.Fatalf("proxy output ended: %v", a.out.Err())
	return nil
}

const initFrame = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"proxy-test","version":"1"}}}`

func TestStdioDoorRelaysAndIntercepts(t *testing.T) {
	rec := &recorder{deny: func(c *toolcall.Call) bool { return c.Tool == "get-sum" }}
	p := New(Options{Upstreams: map[string]upstream.Spec{"everything": everythingSpec(t)}, Interceptor: rec, Logger: testLogger(t)})
	defer p.Close(context.Background())
	a := startStdio(t, p, "everything")

	a.send(initFrame)
	if m := a.recv(true); m.Kind != jsonrpc.KindResponse || string(m.ID) != "1" {
		t.Fatalf("initialize answer = %s", m.Raw)
	}
	a.send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)

	// A string id with an escape: the upstream re-encodes it, so only its
	// value is compared.
	a.send(`{"jsonrpc":"2.0","id":"a\u0062c","method":"tools/call","params":{"name":"echo","arguments":{"message":"hi <there> & 1e400"}}}`)
	m := a.recv(true)
	if m.IDKey() != "s:abc" {
		t.Errorf("echo answer id = %s, want the agent's id", m.ID)
	}
	if !bytes.Contains(m.Result, []byte("hi <there> & 1e400")) {
		t.Errorf("echo result = %s, want the message back", m.Result)
	}

	a.send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get-sum","arguments":{"a":1,"b":2}}}`)
	m = a.recv(true)
	if !bytes.Contains(m.Result, []byte("denied by test")) {
		t.Errorf("denied call answer = %s, want the interceptor's result", m.Raw)
	}

	// Not a tool call: relayed without the interceptor.
	a.send(`{"jsonrpc":"2.0","id":4,"method":"tools/list"}`)
	if m := a.recv(true); !bytes.Contains(m.Result, []byte(`"echo"`)) {
		t.Errorf("tools/list answer = %.200s", m.Raw)
	}

	// Garbage gets -32700 and the session goes on.
	a.send(`{"jsonrpc":"2.0","id":5,`)
	if m := a.recv(true); m.Error == nil || m.Error.Code != jsonrpc.CodeParseError {
		t.Errorf("malformed frame answer = %s, want -32700", m.Raw)
	}
	a.send(`[{"jsonrpc":"2.0","id":6,"method":"ping"}]`)
	if m := a.recv(true); m.Error == nil || m.Error.Code != jsonrpc.CodeInvalidRequest {
		t.Errorf("batch answer = %s, want -32600", m.Raw)
	}
	a.send(`{"jsonrpc":"2.0","id":7,"method":"ping"}`)
	if m := a.recv(true); m.Kind != jsonrpc.KindResponse || string(m.ID) != "7" {
		t.Errorf("ping after errors = %s", m.Raw)
	}

	calls, forwards := rec.snapshot()
	if len(calls) != 2 || calls[0].Tool != "echo" || calls[1].Tool != "get-sum" || forwards != 1 {
		t.Fatalf("interceptor saw %d calls (%d forwarded), want echo forwarded and get-sum denied", len(calls), forwards)
	}
	if got := string(calls[0].Arguments); got != `{"message":"hi <there> & 1e400"}` {
		t.Errorf("echo arguments = %s, want the agent's bytes", got)
	}
	if calls[0].Transport.Protocol != "stdio" || calls[0].Client.Name != "proxy-test" || calls[0].Transport.ProtocolVersion != "2025-11-25" {
		t.Errorf("call transport = %+v client = %+v", calls[0].Transport, calls[0].Client)
	}
}

func TestStdioDoorUpstreamExit(t *testing.T) {
	spec := upstream.Spec{Name: "dies", Command: []string{"sh", "-c", "read line; exit 3"}, Transport: "stdio"}
	p := New(Options{Upstreams: map[string]upstream.Spec{"dies": spec}, Logger: testLogger(t)})
	defer p.Close(context.Background())
	a := startStdio(t, p, "dies")
	a.send(initFrame)
	m := a.recv(true)
	if m.Error == nil || !strings.Contains(m.Error.Message, `"dies"`) {
		t.Fatalf("answer from a dying upstream = %s, want an error naming it", m.Raw)
	}
	select {
	case err := <-a.done:
		if err == nil || !strings.Contains(err.Error(), "dies") {
			t.Errorf("ServeStdio = %v, want an error naming the upstream", err)
		}
		a.done <- err // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("ServeStdio went on after its upstream exited")
	}
}

// statelessEcho is an MCP server written with the official SDK, serving
// stateless streamable HTTP: the shape of a 2026-era upstream.
func statelessEcho(t *testing.T) (*httptest.Server, *idLog) {
	ids := &idLog{}
	srv := mcp.NewServer(&mcp.Implementation{Name: "echo", Version: "1"}, nil)
	type args struct {
		Message string `json:"message"`
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "echo"}, func(ctx context.Context, req *mcp.CallToolRequest, in args) (*mcp.CallToolResult, any, error) {
		time.Sleep(20 * time.Millisecond) // keep calls overlapping
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Message}}}, nil, nil
	})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if m, err := jsonrpc.Parse(body); err == nil && m.ID != nil {
			ids.add(string(m.ID))
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts, ids
}

type idLog struct {
	mu  sync.Mutex
	ids []string
}

func (l *idLog) add(id string) { l.mu.Lock(); l.ids = append(l.ids, id); l.mu.Unlock() }
func (l *idLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.ids...)
}

func startHTTP(t *testing.T, opts Options) (*Proxy, *httptest.Server) {
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	p := New(opts)
	ts := httptest.NewServer(p.Handler())
	t.Cleanup(func() {
		ts.Close()
		p.Close(context.Background())
	})
	return p, ts
}

func post(t *testing.T, url, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// lastFrame returns the last JSON-RPC frame of a JSON or SSE body.
func lastFrame(t *testing.T, body []byte) *jsonrpc.Message {
	t.Helper()
	var last []byte
	if bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) {
		last = body
	}
	for _, line := range strings.Split(string(body), "\n") {
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			last = []byte(d)
		}
	}
	m, perr := jsonrpc.Parse(last)
	if perr != nil {
		t.Fatalf("no frame in body %q: %v", body, perr)
	}
	return m
}

func TestStatelessRequestsShareOneConnectionWithoutCollisions(t *testing.T) {
	up, ids := statelessEcho(t)
	rec := &recorder{}
	_, ts := startHTTP(t, Options{
		Upstreams:   map[string]upstream.Spec{"echo": {Name: "echo", URL: up.URL, Transport: "streamable-http"}},
		Interceptor: rec,
	})
	const n = 8
	var wg sync.WaitGroup
	got := make([]*jsonrpc.Message, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Every client uses id 1: the proxy must keep them apart.
			body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"m` + string(rune('a'+i)) + `"}}}`
			resp, b := post(t, ts.URL+"/mcp/echo", body, map[string]string{"Mcp-Protocol-Version": "2025-06-18"})
			if resp.StatusCode != http.StatusOK {
				t.Errorf("call %d: status %d: %s", i, resp.StatusCode, b)
				return
			}
			got[i] = lastFrame(t, b)
		}()
	}
	wg.Wait()
	for i, m := range got {
		if m == nil {
			continue
		}
		want := "m" + string(rune('a'+i))
		if string(m.ID) != "1" || !bytes.Contains(m.Result, []byte(`"`+want+`"`)) {
			t.Errorf("call %d answer = %s, want id 1 and %q", i, m.Raw, want)
		}
	}
	seen := map[string]bool{}
	for _, id := range ids.all() {
		if seen[id] {
			t.Errorf("upstream saw id %s twice: ids were not rewritten", id)
		}
		seen[id] = true
	}
	if calls, _ := rec.snapshot(); len(calls) != n {
		t.Errorf("interceptor saw %d calls, want %d", len(calls), n)
	}
}

func TestHTTPDoorRejectsBadInput(t *testing.T) {
	up, _ := statelessEcho(t)
	_, ts := startHTTP(t, Options{
		Upstreams:    map[string]upstream.Spec{"echo": {Name: "echo", URL: up.URL, Transport: "streamable-http"}, "other": {Name: "other", URL: up.URL, Transport: "streamable-http"}},
		MaxBodyBytes: 1024,
	})
	tests := []struct {
		name, path, body string
		hdr              map[string]string
		status, code     int
		contains         string
	}{
		{"malformed JSON", "/mcp/echo", `{"jsonrpc":`, nil, 400, jsonrpc.CodeParseError, "parse error"},
		{"batch", "/mcp/echo", `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, nil, 400, jsonrpc.CodeInvalidRequest, "batch"},
		{"not a message", "/mcp/echo", `{"jsonrpc":"2.0","id":1}`, nil, 400, jsonrpc.CodeInvalidRequest, "invalid request"},
		{"wrong version", "/mcp/echo", `{"jsonrpc":"1.0","id":1,"method":"ping"}`, nil, 400, jsonrpc.CodeInvalidRequest, "2.0"},
		{"unknown upstream", "/mcp/nosuch", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, nil, 404, jsonrpc.CodeInvalidRequest, "echo, other"},
		{"unknown session", "/mcp/echo", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, map[string]string{"Mcp-Session-Id": "nope"}, 404, CodeSessionClosed, "initialize"},
		{"oversized body", "/mcp/echo", `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"` + strings.Repeat("a", 2048) + `"}}`, nil, 413, jsonrpc.CodeInvalidRequest, "1024 bytes"},
		{"rebinding host", "/mcp/echo", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, map[string]string{"Host": "evil.example:80"}, 403, jsonrpc.CodeInvalidRequest, "DNS rebinding"},
		{"foreign origin", "/mcp/echo", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, map[string]string{"Origin": "http://evil.example"}, 403, jsonrpc.CodeInvalidRequest, "DNS rebinding"},
		{"no endpoint", "/elsewhere", `{}`, nil, 404, jsonrpc.CodeInvalidRequest, "/mcp/<upstream>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := post(t, ts.URL+tc.path, tc.body, tc.hdr)
			if resp.StatusCode != tc.status {
				t.Errorf("POST %s = %d, want %d (%s)", tc.path, resp.StatusCode, tc.status, body)
			}
			m, perr := jsonrpc.Parse(body)
			if perr != nil || m.Error == nil {
				t.Fatalf("body %q is not a JSON-RPC error", body)
			}
			if m.Error.Code != tc.code || !strings.Contains(m.Error.Message, tc.contains) {
				t.Errorf("error = %d %q, want %d containing %q", m.Error.Code, m.Error.Message, tc.code, tc.contains)
			}
		})
	}
	resp, err := http.Get(ts.URL + "/mcp/echo")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET without a session = %d, want 405", resp.StatusCode)
	}
}

func TestHTTPDoorWithOfficialClient(t *testing.T) {
	rec := &recorder{}
	_, ts := startHTTP(t, Options{Upstreams: map[string]upstream.Spec{"everything": everythingSpec(t)}, Interceptor: rec})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "sdk-client", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: ts.URL + "/mcp/everything"}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatalf("connect through the proxy: %v", err)
	}
	defer cs.Close()
	if cs.ID() == "" {
		t.Error("no Mcp-Session-Id was issued")
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "through"}})
	if err != nil {
		t.Fatalf("echo: %v", err)
	}
	if tc, ok := res.Content[0].(*mcp.TextContent); !ok || !strings.Contains(tc.Text, "through") {
		t.Errorf("echo result = %+v", res.Content)
	}
	calls, _ := rec.snapshot()
	if len(calls) != 1 || calls[0].Transport.SessionID == "" || calls[0].Transport.Protocol != "streamable-http" {
		t.Errorf("interceptor calls = %+v", calls)
	}
}

func TestToolCallParamsRefuseAmbiguity(t *testing.T) {
	tests := []struct {
		params string
		ok     bool
		name   string
	}{
		{`{"name":"echo","arguments":{"a":1}}`, true, "echo"},
		{`{"name":"delete_file","Name":"read_file"}`, false, ""},
		{`{"name":"a","name":"b"}`, false, ""},
		{`{"name":"a","arguments":{},"Arguments":{"x":1}}`, false, ""},
		{`{"name":"a","_meta":{},"_META":{}}`, false, ""},
		{`{"arguments":{}}`, false, ""},
		{`{"name":7}`, false, ""},
	}
	for _, tc := range tests {
		p, err := toolCallParams(json.RawMessage(tc.params))
		if (err == nil) != tc.ok || tc.ok && p.Name != tc.name {
			t.Errorf("toolCallParams(%s) = %q, %v; want ok=%v name %q", tc.params, p.Name, err, tc.ok, tc.name)
		}
		if err != nil && err.Code != jsonrpc.CodeInvalidParams {
			t.Errorf("toolCallParams(%s) code = %d, want -32602", tc.params, err.Code)
		}
	}
}
