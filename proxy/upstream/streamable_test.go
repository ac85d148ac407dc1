package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
)

func dialHTTP(t *testing.T, spec Spec) (Conn, *recorder, *syncBuffer) {
	t.Helper()
	log, logs := testLogger(t)
	rec := &recorder{}
	if spec.Name == "" {
		spec.Name = "sdk"
	}
	conn, err := Dial(context.Background(), spec, rec, log)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { closeConn(t, conn) })
	return conn, rec, logs
}

// TestStreamableStatefulSession runs a 2025-11-25 session against the
// go-sdk's streamable handler with an event store (so streams carry event
// ids and can be resumed).
func TestStreamableStatefulSession(t *testing.T) {
	st := newSDKTools(t)
	hs := newHarness(t, mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return st.server },
		&mcp.StreamableHTTPOptions{EventStore: mcp.NewMemoryEventStore(nil)}), st)
	hs.cutFirstGET = 300 * time.Millisecond
	conn, rec, logs := dialHTTP(t, Spec{Transport: "streamable-http", URL: hs.srv.URL + "/mcp",
		Headers: map[string]string{"X-Api-Key": "secret-key-value"}})

	send(t, conn, initialize2025)
	init := rec.response(t, "1")
	if string(init.related) != "1" {
		t.Errorf("initialize response related = %s, want 1", init.related)
	}
	initPOST := hs.postFor(init.msg.Raw)
	if initPOST == nil {
		t.Fatalf("initialize response %s not found byte for byte in any response body", init.msg.Raw)
	}
	send(t, conn, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)

	// Later requests carry the session id and the negotiated version; the
	// static header goes on every request; an agent's credentials never do.
	opts := SendOptions{Header: http.Header{"Authorization": {"Bearer agent-token"}, "X-Trace": {"t1"}}}
	if err := conn.Send(context.Background(), frame(t, `{"jsonrpc":"2.0","id":2,"method":"logging/setLevel","params":{"level":"debug"}}`), opts); err != nil {
		t.Fatal(err)
	}
	rec.response(t, "2")
	posts := hs.requests(http.MethodPost)
	last := posts[len(posts)-1].header
	sessionID := last.Get("Mcp-Session-Id")
	if sessionID == "" || last.Get("Mcp-Protocol-Version") != "2025-11-25" || last.Get("X-Api-Key") != "secret-key-value" ||
		last.Get("X-Trace") != "t1" || last.Get("Authorization") != "" {
		t.Errorf("setLevel POST headers = %v; want session id, version 2025-11-25, X-Api-Key, X-Trace and no Authorization", last)
	}
	if posts[0].header.Get("Mcp-Session-Id") != "" {
		t.Errorf("initialize carried a session id")
	}

	// Progress and log notifications ride the request's stream, before the
	// response, tagged with the request id, byte for byte.
	send(t, conn, `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"progress","arguments":{},"_meta":{"progressToken":"tok-3"}}}`)
	resp3 := rec.response(t, "3")
	post3 := hs.postFor(resp3.msg.Raw)
	rec.mu.Lock()
	respAt := rec.indexOfResponseLocked("3")
	var progress, logsSeen int
	for i, f := range rec.frames {
		if f.msg.Method != "notifications/progress" && f.msg.Method != "notifications/message" {
			continue
		}
		if string(f.related) != "3" {
			continue
		}
		if f.msg.Method == "notifications/progress" {
			progress++
		} else {
			logsSeen++
		}
		if i > respAt {
			t.Errorf("%s arrived after the response", f.msg.Method)
		}
		if post3 == nil || !strings.Contains(post3.body.String(), string(f.msg.Raw)) {
			t.Errorf("frame %s is not byte for byte what the server sent", f.msg.Raw)
		}
	}
	rec.mu.Unlock()
	if progress != 3 || logsSeen != 3 {
		t.Errorf("got %d progress and %d log notifications on the request's stream, want 3 and 3", progress, logsSeen)
	}

	// The GET stream opened after initialization; the harness cut the
	// first one, and the conn reopened it.
	waitUntil(t, "GET stream reopened", func() bool { return len(hs.requests(http.MethodGet)) >= 2 })
	for _, g := range hs.requests(http.MethodGet) {
		if g.header.Get("Mcp-Session-Id") != sessionID || !strings.Contains(g.header.Get("Accept"), "text/event-stream") {
			t.Errorf("GET headers = %v, want the session id and Accept: text/event-stream", g.header)
		}
	}
	// A server-initiated notification (tools/list_changed after a tool is
	// added) reaches the Handler from the GET stream with related=nil. The
	// server debounces it by 10ms and drops it while no GET is attached, so
	// add tools now and then until one gets through.
	listChanged := func() bool {
		for _, f := range rec.framesWithMethod("notifications/tools/list_changed") {
			if f.related == nil {
				return true
			}
		}
		return false
	}
	for added := 1; !listChanged(); added++ {
		if added > 50 {
			t.Fatal("no tools/list_changed arrived on the GET stream")
		}
		st.server.AddTool(&mcp.Tool{Name: fmt.Sprintf("extra-%d", added), InputSchema: json.RawMessage(`{"type":"object"}`)},
			func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return &mcp.CallToolResult{}, nil
			})
		time.Sleep(100 * time.Millisecond)
	}

	// The server closes the request's stream midway (SEP-1699); the conn
	// resumes it with Last-Event-ID and gets the rest.
	send(t, conn, `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"resume","arguments":{},"_meta":{"progressToken":"tok-4"}}}`)
	if resp := rec.response(t, "4"); string(resp.related) != "4" || !strings.Contains(string(resp.msg.Raw), "resumed") {
		t.Errorf("resumed response = %s related %s", resp.msg.Raw, resp.related)
	}
	resumed := false
	for _, g := range hs.requests(http.MethodGet) {
		resumed = resumed || g.header.Get("Last-Event-ID") != ""
	}
	if !resumed {
		t.Error("no GET with Last-Event-ID: the response did not come through a resumption")
	}
	if n := len(rec.framesWithMethod("notifications/progress")); n != 3+2 {
		t.Errorf("got %d progress notifications in all, want 5", n)
	}

	// Close with a request in flight: it fails with ErrClosed before
	// ConnClosed, and the session is ended with DELETE (which the go-sdk
	// answers only once its running handlers are done).
	send(t, conn, `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"slow","arguments":{}}}`)
	closeConn(t, conn)
	if err := rec.failure(t, "5"); !errors.Is(err, ErrClosed) {
		t.Errorf("RequestFailed(5, %v), want ErrClosed", err)
	}
	if err := rec.connClosed(t); !errors.Is(err, ErrClosed) {
		t.Errorf("ConnClosed(%v), want ErrClosed", err)
	}
	rec.checkClosedOnce(t)
	dels := hs.requests(http.MethodDelete)
	if len(dels) != 1 || dels[0].header.Get("Mcp-Session-Id") != sessionID {
		t.Errorf("DELETE requests = %d, want one carrying the session id", len(dels))
	}
	if strings.Contains(logs.String(), "secret-key-value") || strings.Contains(logs.String(), sessionID) {
		t.Error("a header value or the session id was logged")
	}
}

// TestStreamableSessionExpired: the server forgets the session (a restart);
// the next request gets 404, fails with ErrSessionExpired, and the conn
// closes.
func TestStreamableSessionExpired(t *testing.T) {
	st := newSDKTools(t)
	getServer := func(*http.Request) *mcp.Server { return st.server }
	hs := newHarness(t, mcp.NewStreamableHTTPHandler(getServer, nil), st)
	conn, rec, _ := dialHTTP(t, Spec{URL: hs.srv.URL})

	send(t, conn, initialize2025)
	rec.response(t, "1")
	send(t, conn, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)

	hs.setHandler(mcp.NewStreamableHTTPHandler(getServer, nil)) // a fresh server: no sessions
	send(t, conn, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}`)
	if err := rec.failure(t, "2"); !errors.Is(err, ErrSessionExpired) {
		t.Errorf("RequestFailed(2, %v), want ErrSessionExpired", err)
	}
	if err := rec.connClosed(t); !errors.Is(err, ErrSessionExpired) {
		t.Errorf("ConnClosed(%v), want ErrSessionExpired", err)
	}
	if err := conn.Send(context.Background(), frame(t, `{"jsonrpc":"2.0","id":3,"method":"ping"}`), SendOptions{}); !errors.Is(err, ErrSessionExpired) {
		t.Errorf("Send after expiry = %v, want ErrSessionExpired", err)
	}
	closeConn(t, conn)
	if n := len(hs.requests(http.MethodDelete)); n != 0 {
		t.Errorf("sent %d DELETEs for a session the server no longer has", n)
	}
	rec.checkClosedOnce(t)
}

// TestStreamableStreamBroken: without an event store the server's streams
// carry no event ids, so a stream closed before the response cannot be
// resumed: the request fails with ErrStreamBroken and the conn lives on.
func TestStreamableStreamBroken(t *testing.T) {
	st := newSDKTools(t)
	hs := newHarness(t, mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return st.server }, nil), st)
	conn, rec, _ := dialHTTP(t, Spec{URL: hs.srv.URL})
	send(t, conn, initialize2025)
	rec.response(t, "1")
	send(t, conn, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	send(t, conn, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"resume","arguments":{},"_meta":{"progressToken":"p"}}}`)
	if err := rec.failure(t, "2"); !errors.Is(err, ErrStreamBroken) {
		t.Errorf("RequestFailed(2, %v), want ErrStreamBroken", err)
	}
	send(t, conn, `{"jsonrpc":"2.0","id":3,"method":"ping"}`)
	rec.response(t, "3")
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.indexOfResponseLocked("2") >= 0 {
		t.Error("got a response to 2 as well as RequestFailed")
	}
}

const meta2026 = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"agenthelm-test","version":"0.0.0"}}`

// TestStreamableStateless2026 speaks 2026-07-28 to a stateless go-sdk
// handler: no initialize, no session, per-request _meta, and headers the
// conn mirrors from the body by itself.
func TestStreamableStateless2026(t *testing.T) {
	st := newSDKTools(t)
	hs := newHarness(t, mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return st.server },
		&mcp.StreamableHTTPOptions{Stateless: true, PropagateRequestCancellation: true}), st)
	conn, rec, _ := dialHTTP(t, Spec{URL: hs.srv.URL})

	send(t, conn, `{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{`+meta2026+`}}`)
	disc := rec.response(t, "1")
	var d struct {
		SupportedVersions []string `json:"supportedVersions"`
	}
	_ = json.Unmarshal(disc.msg.Result, &d)
	if disc.msg.Kind != jsonrpc.KindResponse || !strings.Contains(strings.Join(d.SupportedVersions, ","), "2026-07-28") {
		t.Errorf("server/discover = %s, want supportedVersions with 2026-07-28", disc.msg.Raw)
	}
	t.Logf("server/discover result: %s", disc.msg.Result)

	send(t, conn, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"stateless"},`+meta2026+`}}`)
	echo := rec.response(t, "2")
	if echo.msg.Kind != jsonrpc.KindResponse || !strings.Contains(string(echo.msg.Result), "Echo: stateless") {
		t.Fatalf("echo = %s", echo.msg.Raw)
	}
	t.Logf("2026-07-28 tools/call result: %s", echo.msg.Result)
	post := hs.postFor(echo.msg.Raw)
	if post == nil {
		t.Fatal("echo response not found byte for byte in a response body")
	}
	if h := post.header; h.Get("Mcp-Protocol-Version") != "2026-07-28" || h.Get("Mcp-Method") != "tools/call" ||
		h.Get("Mcp-Name") != "echo" || h.Get("Mcp-Session-Id") != "" {
		t.Errorf("stateless POST headers = %v; want version 2026-07-28, Mcp-Method tools/call, Mcp-Name echo, no session", h)
	}

	send(t, conn, `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"progress","arguments":{},"_meta":{"progressToken":7,`+meta2026[len(`"_meta":{`):]+`}}`)
	rec.response(t, "3")
	rec.mu.Lock()
	respAt := rec.indexOfResponseLocked("3")
	progress := 0
	for i, f := range rec.frames {
		if f.msg.Method == "notifications/progress" && string(f.related) == "3" && i < respAt {
			progress++
		}
	}
	rec.mu.Unlock()
	if progress != 3 {
		t.Errorf("got %d progress notifications before the response, want 3", progress)
	}

	// Cancelling Send's ctx closes the response stream, which in
	// 2026-07-28 cancels the request on the server.
	ctx, cancel := context.WithCancel(context.Background())
	if err := conn.Send(ctx, frame(t, `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"hang","arguments":{},`+meta2026+`}}`), SendOptions{}); err != nil {
		t.Fatal(err)
	}
	<-st.hangStarted
	hangPOST := hs.requests(http.MethodPost)
	cancel()
	if err := rec.failure(t, "4"); !errors.Is(err, context.Canceled) {
		t.Errorf("RequestFailed(4, %v), want context.Canceled", err)
	}
	select {
	case <-hangPOST[len(hangPOST)-1].ctx.Done():
	case <-time.After(10 * time.Second):
		t.Error("the server's request context was not cancelled")
	}
	select {
	case <-st.hangCancelled:
	case <-time.After(10 * time.Second):
		t.Error("the tool handler was not cancelled")
	}
	if err := conn.Err(); err != nil {
		t.Errorf("abandoning one request closed the conn: %v", err)
	}
	if n := len(hs.requests(http.MethodGet)); n != 0 {
		t.Errorf("opened %d GET streams without a session", n)
	}
}

// TestStreamableJSONResponses: a server answering application/json gets
// each frame relayed exactly as its body.
func TestStreamableJSONResponses(t *testing.T) {
	st := newSDKTools(t)
	hs := newHarness(t, mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return st.server },
		&mcp.StreamableHTTPOptions{JSONResponse: true}), st)
	conn, rec, _ := dialHTTP(t, Spec{URL: hs.srv.URL})
	send(t, conn, initialize2025)
	init := rec.response(t, "1")
	send(t, conn, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	send(t, conn, `{"jsonrpc":"2.0","id":"e","method":"tools/call","params":{"name":"echo","arguments":{"message":"json"}}}`)
	echo := rec.response(t, `"e"`)
	for _, f := range []recFrame{init, echo} {
		post := hs.postFor(f.msg.Raw)
		if post == nil || !bytes.Equal(bytes.TrimSpace([]byte(post.body.String())), f.msg.Raw) {
			t.Errorf("frame %s is not the whole response body", f.msg.Raw)
		}
	}
}

// TestStreamableErrorStatuses: a JSON-RPC error under an HTTP error status
// is the server's answer and is delivered; any other error status fails the
// request with a *StatusError; for a notification Send returns it.
func TestStreamableErrorStatuses(t *testing.T) {
	st := newSDKTools(t)
	hs := newHarness(t, mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return st.server }, nil), st)
	conn, rec, _ := dialHTTP(t, Spec{URL: hs.srv.URL})

	// A stateful server refuses 2026-07-28 with 400 and a JSON-RPC error.
	send(t, conn, `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{`+meta2026+`}}`)
	if resp := rec.response(t, "1"); resp.msg.Kind != jsonrpc.KindErrorResponse || string(resp.related) != "1" {
		t.Errorf("answer = %s related %s, want an error response for id 1", resp.msg.Raw, resp.related)
	} else {
		t.Logf("stateful go-sdk answer to a 2026-07-28 request: %s", resp.msg.Raw)
	}

	bad := SendOptions{Header: http.Header{"Mcp-Protocol-Version": {"1999-01-01"}}}
	if err := conn.Send(context.Background(), frame(t, initialize2025), bad); err != nil {
		t.Fatal(err)
	}
	var se *StatusError
	if err := rec.failure(t, "1"); !errors.As(err, &se) || se.Code != http.StatusBadRequest || !strings.Contains(se.Error(), "Unsupported protocol version") {
		t.Errorf("RequestFailed(1, %v), want a 400 *StatusError with the body excerpt", err)
	}
	err := conn.Send(context.Background(), frame(t, `{"jsonrpc":"2.0","method":"notifications/initialized"}`), bad)
	if !errors.As(err, &se) || se.Code != http.StatusBadRequest || !strings.Contains(err.Error(), `"sdk"`) {
		t.Errorf("Send(notification) = %v, want a 400 *StatusError naming the upstream", err)
	}
	if err := conn.Err(); err != nil {
		t.Errorf("error statuses closed the conn: %v", err)
	}
}

func TestStreamableRedirects(t *testing.T) {
	st := newSDKTools(t)
	target := newHarness(t, mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return st.server }, nil), st)
	mux := http.NewServeMux()
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.srv.URL+"/mcp", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/mcp", http.StatusTemporaryRedirect)
	})
	mux.Handle("/mcp", mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return st.server }, nil))
	front := httptest.NewServer(mux)
	t.Cleanup(front.Close)

	conn, rec, _ := dialHTTP(t, Spec{Name: "redirected", URL: front.URL + "/elsewhere", Headers: map[string]string{"X-Api-Key": "k"}})
	send(t, conn, initialize2025)
	if err := rec.failure(t, "1"); !strings.Contains(err.Error(), "another origin") || !strings.Contains(err.Error(), `"redirected"`) {
		t.Errorf("RequestFailed(1, %v) after a cross-origin redirect, want a refusal naming the upstream", err)
	}
	if n := len(target.requests("")); n != 0 {
		t.Errorf("the other origin got %d requests", n)
	}

	conn2, rec2, _ := dialHTTP(t, Spec{URL: front.URL + "/moved"})
	send(t, conn2, initialize2025)
	if resp := rec2.response(t, "1"); resp.msg.Kind != jsonrpc.KindResponse {
		t.Errorf("same-origin redirect: %s", resp.msg.Raw)
	}
}

func TestHTTPConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String() + "/mcp"
	l.Close()

	conn, rec, _ := dialHTTP(t, Spec{Name: "down", URL: url})
	err = conn.Send(context.Background(), frame(t, initialize2025), SendOptions{})
	if err == nil || !strings.Contains(err.Error(), `"down"`) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Send to a closed port = %v, want connection refused naming the upstream", err)
	}
	rec.mu.Lock()
	if len(rec.failed) != 0 {
		t.Errorf("RequestFailed called for a request Send refused: %v", rec.failed)
	}
	rec.mu.Unlock()

	_, err = Dial(context.Background(), Spec{Name: "down-sse", Transport: "sse", URL: url}, &recorder{}, nil)
	if err == nil || !strings.Contains(err.Error(), `"down-sse"`) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Dial legacy SSE to a closed port = %v, want connection refused naming the upstream", err)
	}
}

func TestEncodeHeaderValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"get_weather", "get_weather"},
		{"file:///a/b.json", "file:///a/b.json"},
		{"Hello, 世界", "=?base64?SGVsbG8sIOS4lueVjA==?="},
		{" padded ", "=?base64?IHBhZGRlZCA=?="},
		{"line1\nline2", "=?base64?bGluZTEKbGluZTI=?="},
		{"=?base64?literal?=", "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="},
	}
	for _, tt := range tests {
		if got := encodeHeaderValue(tt.in); got != tt.want {
			t.Errorf("encodeHeaderValue(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
