package httptool

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agenthelm/agenthelm/internal/paymentsapi"
	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
	"github.com/agenthelm/agenthelm/toolcall"
)

// TestRoutedCall checks the tool call a routed request becomes, what
// reaches the upstream, and that the agent gets the upstream's answer.
func TestRoutedCall(t *testing.T) {
	api := paymentsapi.Start(t)
	rec := &recorder{}
	_, base := startProxy(t, paymentsOptions(api, rec))

	r := send(t, "POST", base+"/payments/v1/charges?expand=customer&expand=balance&limit=2", `{"amount": 12345678901234567890, "currency":"eur"}`,
		"X-Agent-Id", "support-bot", "X-AgentHelm-Saga", "saga-7",
		"Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"Authorization", "Bearer agent-secret", "Accept", "application/json", "Idempotency-Key", "agent-key-1")
	if r.status != http.StatusBadRequest {
		// The ledger refuses amounts that do not fit: the upstream's
		// answer comes back as it is, whatever its status.
		t.Fatalf("status %d %s, want the API's 400", r.status, r.body)
	}
	if r.header.Get("X-Ledger") != "paymentsapi" || !strings.Contains(r.body, "want {amount") {
		t.Errorf("answer %v %s is not the API's", r.header, r.body)
	}

	call := rec.last(t)
	if call.Upstream != "payments" || call.Tool != "charge" {
		t.Errorf("call = %s/%s, want payments/charge", call.Upstream, call.Tool)
	}
	var args map[string]any
	dec := json.NewDecoder(strings.NewReader(string(call.Arguments)))
	dec.UseNumber()
	if err := dec.Decode(&args); err != nil {
		t.Fatalf("arguments %s: %v", call.Arguments, err)
	}
	wantArgs := map[string]any{
		"method": "POST", "path": "/v1/charges", "params": map[string]any{},
		"query":   map[string]any{"expand": []any{"customer", "balance"}, "limit": []any{"2"}},
		"headers": map[string]any{"Accept": "application/json", "Content-Type": "application/json", "Idempotency-Key": "agent-key-1", "X-Agent-Id": "support-bot"},
		"body":    map[string]any{"amount": json.Number("12345678901234567890"), "currency": "eur"},
	}
	if d := cmp.Diff(wantArgs, args); d != "" {
		t.Errorf("arguments (-want +got):\n%s", d)
	}
	if name := string(jsonrpc.Member(call.Params, "name")); name != `"charge"` {
		t.Errorf("params.name = %s", name)
	}
	if got := jsonrpc.Member(call.Params, "arguments"); string(got) != string(call.Arguments) {
		t.Errorf("params.arguments = %s, want the arguments", got)
	}
	if tp := string(jsonrpc.Member(jsonrpc.Member(call.Params, "_meta"), "traceparent")); !strings.Contains(tp, "0af7651916cd43dd8448eb211c80319c") {
		t.Errorf("params._meta.traceparent = %s, want the agent's", tp)
	}
	wantTransport := toolcall.Transport{Kind: "http", Protocol: "http", Method: "POST", Path: "/v1/charges", Headers: map[string]string{
		"X-Agenthelm-Saga": "saga-7", "Traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"Content-Type": "application/json", "X-Agent-Id": "support-bot",
	}, Query: map[string][]string{"expand": {"customer", "balance"}, "limit": {"2"}}}
	got := call.Transport
	if !strings.HasPrefix(got.RemoteAddr, "127.0.0.1:") {
		t.Errorf("remote addr %q", got.RemoteAddr)
	}
	got.RemoteAddr = ""
	if d := cmp.Diff(wantTransport, got); d != "" {
		t.Errorf("transport (-want +got):\n%s", d)
	}
	if !strings.HasPrefix(string(call.RequestID), `"http-`) {
		t.Errorf("request id %s", call.RequestID)
	}

	reqs := api.Requests()
	if len(reqs) != 1 {
		t.Fatalf("the API got %d requests, want 1", len(reqs))
	}
	up := reqs[0]
	if up.URI != "/v1/charges?expand=customer&expand=balance&limit=2" || up.Body != `{"amount": 12345678901234567890, "currency":"eur"}` {
		t.Errorf("upstream got %s %s, want the agent's path, query and body bytes", up.URI, up.Body)
	}
	if up.Header.Get("Idempotency-Key") != "agent-key-1" {
		t.Errorf("upstream Idempotency-Key = %q, want the agent's own", up.Header.Get("Idempotency-Key"))
	}
	if up.Header.Get("Authorization") != "" || up.Header.Get("X-Agenthelm-Saga") != "" {
		t.Errorf("upstream got the agent's Authorization or saga header: %v", up.Header)
	}
	if up.Header.Get("X-Api-Key") != "sk_test_configured" {
		t.Errorf("upstream X-Api-Key = %q, want the configured header", up.Header.Get("X-Api-Key"))
	}
}

// TestForwardUsesEditedMeta: the idempotency key and trace context the
// interceptor put in _meta are sent as headers.
func TestForwardUsesEditedMeta(t *testing.T) {
	api := paymentsapi.Start(t)
	tp := "00-11111111111111111111111111111111-2222222222222222-01"
	ic := interceptorFunc(func(ctx context.Context, call *toolcall.Call, forward toolcall.Forward) (toolcall.Result, error) {
		meta, _ := jsonrpc.SetMember(nil, metaIdempotencyKey, json.RawMessage(`"ah-KEY"`))
		meta, _ = jsonrpc.SetMember(meta, "traceparent", json.RawMessage(`"`+tp+`"`))
		meta, _ = jsonrpc.SetMember(meta, "baggage", json.RawMessage(`"k=v"`))
		params, _ := jsonrpc.SetMember(call.Params, "_meta", meta)
		res, err := forward(ctx, params)
		if _, err2 := forward(ctx, params); !errors.Is(err2, errForwardedTwice) {
			t.Errorf("second forward = %v, want errForwardedTwice", err2)
		}
		return res, err
	})
	_, base := startProxy(t, paymentsOptions(api, ic))
	r := send(t, "POST", base+"/payments/v1/charges", `{"amount":5,"currency":"eur"}`, "Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	if r.status != http.StatusCreated {
		t.Fatalf("status %d %s", r.status, r.body)
	}
	h := api.Requests()[0].Header
	if h.Get("Idempotency-Key") != "ah-KEY" || h.Get("Traceparent") != tp || h.Get("Baggage") != "k=v" {
		t.Errorf("upstream headers %v, want the key and trace context from _meta", h)
	}
	if h.Get("Accept-Encoding") != "" {
		t.Errorf("a routed call asked for %q: the journal needs a body it can read", h.Get("Accept-Encoding"))
	}
}

// TestPathsVerbatim: paths are never normalized; what the interceptor sees
// is what the upstream gets, and placeholders do not match dot segments.
func TestPathsVerbatim(t *testing.T) {
	api := paymentsapi.Start(t)
	rec := &recorder{}
	_, base := startProxy(t, paymentsOptions(api, rec))

	// An unrouted read is forwarded as sent.
	r := send(t, "GET", base+"/payments/v1/charges/../admin", "")
	if r.status != http.StatusNotFound || r.header.Get("X-Ledger") != "paymentsapi" {
		t.Errorf("GET ../admin: %d %s, want the API's own 404", r.status, r.body)
	}
	// A routed call with an encoded slash in a placeholder.
	r = send(t, "DELETE", base+"/payments/v1/charges/ch%2F1%2F..", "")
	if r.status != http.StatusNotFound {
		t.Errorf("DELETE ch%%2F1: %d %s", r.status, r.body)
	}
	call := rec.last(t)
	if call.Tool != "cancel_charge" || call.Transport.Path != "/v1/charges/ch%2F1%2F.." || !strings.Contains(string(call.Arguments), `"params":{"id":"ch%2F1%2F.."}`) {
		t.Errorf("call %s path %s args %s, want cancel_charge of the path as sent", call.Tool, call.Transport.Path, call.Arguments)
	}
	// The literal route wins over the placeholder.
	send(t, "DELETE", base+"/payments/v1/charges/all", "")
	if tool := rec.last(t).Tool; tool != "cancel_all" {
		t.Errorf("DELETE /v1/charges/all is %s, want cancel_all", tool)
	}
	var uris []string
	for _, q := range api.Requests() {
		uris = append(uris, q.URI)
	}
	want := []string{"/v1/charges/../admin", "/v1/charges/ch%2F1%2F..", "/v1/charges/all"}
	if d := cmp.Diff(want, uris); d != "" {
		t.Errorf("paths the API got (-want +got):\n%s", d)
	}

	// Writes that climb out of a route are refused, not forwarded.
	calls := rec.count()
	for _, path := range []string{"/v1/refunds/../charges", "/v1/charges/..", "/v1/charges/%2e%2E", "/v1//charges", "/v1/charges/"} {
		method := "POST"
		if strings.HasPrefix(path, "/v1/charges/") {
			method = "DELETE"
		}
		r := send(t, method, base+"/payments"+path, "{}")
		if pr := problemOf(t, r); r.status != http.StatusForbidden || pr.Code != codeNotAToolCall {
			t.Errorf("%s %s: %d %s, want 403 not_a_tool_call", method, path, r.status, r.body)
		}
	}
	if rec.count() != calls || len(api.Requests()) != len(want) {
		t.Errorf("refused writes reached the interceptor or the API")
	}
}

// TestUnrouted: unknown upstreams get 404, unrouted writes 403 with a
// hint, unrouted reads pass through without being tool calls.
func TestUnrouted(t *testing.T) {
	api := paymentsapi.Start(t)
	rec := &recorder{}
	_, base := startProxy(t, paymentsOptions(api, rec))

	r := send(t, "GET", base+"/nope/v1/charges", "")
	pr := problemOf(t, r)
	if r.status != http.StatusNotFound || pr.Code != codeUnknownUpstream || !cmp.Equal(pr.Upstreams, []string{"payments"}) {
		t.Errorf("unknown upstream: %d %s", r.status, r.body)
	}
	r = send(t, "POST", base+"/payments/v1/refunds", `{"charge":"ch_1"}`)
	pr = problemOf(t, r)
	if r.status != http.StatusForbidden || pr.Code != codeNotAToolCall || !strings.Contains(pr.Detail, "routes: [{upstream: payments, method: POST, path: /v1/refunds") {
		t.Errorf("unrouted POST: %d %s", r.status, r.body)
	}
	r = send(t, "GET", base+"/payments/v1/charges", "", "Authorization", "Bearer agent-secret")
	if r.status != http.StatusOK || r.body != "null" {
		t.Errorf("unrouted GET: %d %s", r.status, r.body)
	}
	if r := send(t, "HEAD", base+"/payments/v1/charges", ""); r.status != http.StatusNotFound || r.body != "" || r.header.Get("X-Ledger") != "paymentsapi" || r.header.Get("Content-Length") != "46" {
		t.Errorf("unrouted HEAD: %d %v %q", r.status, r.header, r.body)
	}
	if r := send(t, "OPTIONS", base+"/payments/v1/charges", ""); r.status != http.StatusNotFound || r.header.Get("X-Ledger") != "paymentsapi" {
		t.Errorf("unrouted OPTIONS: %d %s, want the API's answer", r.status, r.body)
	}
	if rec.count() != 0 {
		t.Errorf("the interceptor saw %d calls, want none", rec.count())
	}
	reqs := api.Requests()
	if len(reqs) != 3 || reqs[0].Method != "GET" || reqs[0].Header.Get("Authorization") != "" || reqs[0].Header.Get("X-Api-Key") != "sk_test_configured" {
		t.Errorf("the API got %+v, want a GET without the agent's credentials, with the configured header, then HEAD and OPTIONS", reqs)
	}
}

// TestHopByHop: connection headers, and those Connection names, go
// neither way.
func TestHopByHop(t *testing.T) {
	var mu sync.Mutex
	var got http.Header
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.Header.Clone()
		mu.Unlock()
		w.Header().Set("Connection", "X-Hop-Out")
		w.Header().Set("X-Hop-Out", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("Proxy-Authenticate", "Basic")
		w.Header().Set("X-Kept", "yes")
		w.WriteHeader(http.StatusAccepted)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = up.Serve(ln) }()
	t.Cleanup(func() { _ = up.Close() })
	_, base := startProxy(t, Options{
		Upstreams: map[string]Upstream{"api": {URL: "http://" + ln.Addr().String() + "/base/", Headers: map[string]string{"Authorization": "Bearer configured"}}},
		Routes:    []Route{{Upstream: "api", Method: "PUT", Path: "/things/{id}", Tool: "put_thing"}},
	})
	r := send(t, "PUT", base+"/api/things/7?x=1", `{}`,
		"Connection", "X-Hop-In", "X-Hop-In", "1", "Keep-Alive", "timeout=1", "Te", "trailers", "Upgrade", "h2c",
		"Proxy-Authorization", "Basic abc", "Authorization", "Bearer agent", "Cookie", "a=b", "X-Custom", "kept")
	if r.status != http.StatusAccepted {
		t.Fatalf("status %d %s", r.status, r.body)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, h := range []string{"X-Hop-In", "Keep-Alive", "Te", "Upgrade", "Proxy-Authorization", "Cookie"} {
		if got.Get(h) != "" {
			t.Errorf("upstream got %s: %q", h, got.Get(h))
		}
	}
	if got.Get("Authorization") != "Bearer configured" || got.Get("X-Custom") != "kept" {
		t.Errorf("upstream headers %v, want the configured Authorization and X-Custom", got)
	}
	for _, h := range []string{"X-Hop-Out", "Keep-Alive", "Proxy-Authenticate"} {
		if r.header.Get(h) != "" {
			t.Errorf("agent got %s: %q", h, r.header.Get(h))
		}
	}
	if r.header.Get("X-Kept") != "yes" {
		t.Errorf("agent headers %v, want X-Kept", r.header)
	}
}

// TestBasePath: the base URL's path and query prefix the agent's.
func TestBasePath(t *testing.T) {
	api := paymentsapi.Start(t)
	_, base := startProxy(t, Options{Upstreams: map[string]Upstream{"p": {URL: api.URL + "/base/?tenant=t1"}}})
	send(t, "GET", base+"/p/v1/x?y=1", "")
	send(t, "GET", base+"/p", "")
	var uris []string
	for _, q := range api.Requests() {
		uris = append(uris, q.URI)
	}
	if d := cmp.Diff([]string{"/base/v1/x?tenant=t1&y=1", "/base/?tenant=t1"}, uris); d != "" {
		t.Errorf("paths the API got (-want +got):\n%s", d)
	}
}

// TestLimits: bodies above max_body_bytes, an upstream that is down or
// does not answer in time.
func TestLimits(t *testing.T) {
	api := paymentsapi.Start(t)
	down := closedURL(t) // nothing listens there
	opts := paymentsOptions(api, nil)
	opts.MaxBodyBytes = 1024
	opts.CallTimeout = 300 * time.Millisecond
	opts.Upstreams["down"] = Upstream{URL: down}
	opts.Routes = append(opts.Routes, Route{Upstream: "down", Method: "POST", Path: "/v1/charges", Tool: "charge"},
		Route{Upstream: "payments", Method: "GET", Path: "/v1/big/routed", Tool: "big"})
	_, base := startProxy(t, opts)

	r := send(t, "POST", base+"/payments/v1/charges", `{"amount":1,"pad":"`+strings.Repeat("x", 2048)+`"}`)
	if pr := problemOf(t, r); r.status != http.StatusRequestEntityTooLarge || pr.Code != codeBodyTooLarge || !strings.Contains(pr.Detail, "limits.max_body_bytes (1024 bytes)") {
		t.Errorf("large request: %d %s", r.status, r.body)
	}
	// A routed call's answer is journaled, so it must fit the limit; an
	// unrouted read is streamed to the agent and need not.
	r = send(t, "GET", base+"/payments/v1/big/routed?bytes=4096", "")
	if pr := problemOf(t, r); r.status != http.StatusBadGateway || pr.Code != codeResponseTooLarge {
		t.Errorf("large response to a routed call: %d %s", r.status, r.body)
	}
	r = send(t, "GET", base+"/payments/v1/big?bytes=4096", "")
	if r.status != http.StatusOK || len(r.body) != 4096 {
		t.Errorf("large response to an unrouted read: %d with %d bytes, want 200 with 4096", r.status, len(r.body))
	}
	r = send(t, "POST", base+"/down/v1/charges", `{"amount":1}`)
	if pr := problemOf(t, r); r.status != http.StatusBadGateway || pr.Code != codeUpstreamDown || pr.Upstream != "down" {
		t.Errorf("upstream down: %d %s", r.status, r.body)
	}
	r = send(t, "POST", base+"/payments/v1/slow", `{}`)
	if pr := problemOf(t, r); r.status != http.StatusGatewayTimeout || pr.Code != codeUpstreamTimeout {
		t.Errorf("hanging upstream: %d %s", r.status, r.body)
	}
}

// TestForwardErrors: what a forward returns for each failure, as the
// engine classifies it.
func TestForwardErrors(t *testing.T) {
	api := paymentsapi.Start(t)
	down := closedURL(t) // nothing listens there
	var mu sync.Mutex
	errs := map[string]error{}
	ic := interceptorFunc(func(ctx context.Context, call *toolcall.Call, forward toolcall.Forward) (toolcall.Result, error) {
		res, err := forward(ctx, call.Params)
		mu.Lock()
		errs[call.Upstream+" "+call.Tool] = err
		mu.Unlock()
		return res, err
	})
	opts := paymentsOptions(api, ic)
	opts.CallTimeout = 300 * time.Millisecond
	opts.Upstreams["down"] = Upstream{URL: down}
	opts.Routes = append(opts.Routes, Route{Upstream: "down", Method: "POST", Path: "/x", Tool: "x"})
	_, base := startProxy(t, opts)
	send(t, "POST", base+"/down/x", "{}")
	send(t, "POST", base+"/payments/v1/slow", "{}")
	mu.Lock()
	defer mu.Unlock()
	if err := errs["down x"]; !errors.Is(err, toolcall.ErrNotSent) {
		t.Errorf("refused connection: %v, want ErrNotSent", err)
	}
	if err := errs["payments slow"]; !errors.Is(err, toolcall.ErrTimeout) || errors.Is(err, toolcall.ErrNotSent) {
		t.Errorf("no answer: %v, want ErrTimeout", err)
	}
}

// TestResultOf: the tool result of an upstream answer.
func TestResultOf(t *testing.T) {
	api := paymentsapi.Start(t)
	results := make(chan toolcall.Result, 2)
	ic := interceptorFunc(func(ctx context.Context, call *toolcall.Call, forward toolcall.Forward) (toolcall.Result, error) {
		res, err := forward(ctx, call.Params)
		results <- res
		return res, err
	})
	_, base := startProxy(t, paymentsOptions(api, ic))
	send(t, "POST", base+"/payments/v1/charges", `{"amount":5,"currency":"eur"}`)
	res := <-results
	var got toolResult
	if err := json.Unmarshal(res.Result, &got); err != nil {
		t.Fatal(err)
	}
	if got.IsError || got.StructuredContent.Status != 201 || string(got.StructuredContent.Body) != `{"id":"ch_1","amount":5,"currency":"eur","status":"succeeded"}` ||
		got.StructuredContent.Headers["Content-Type"] != "application/json" || got.StructuredContent.Headers["X-Ledger"] != "paymentsapi" ||
		len(got.Content) != 1 || !strings.Contains(got.Content[0].Text, `"id":"ch_1"`) {
		t.Errorf("result %s", res.Result)
	}
	if _, ok := got.StructuredContent.Headers["Date"]; ok {
		t.Errorf("result headers %v carry Date", got.StructuredContent.Headers)
	}
	send(t, "POST", base+"/payments/v1/fail", ``)
	if res := <-results; !res.IsToolError() {
		t.Errorf("a 500 answer %s is not a tool error", res.Result)
	}
}

// TestGuard: DNS rebinding protection and bearer tokens, before anything
// is forwarded.
func TestGuard(t *testing.T) {
	api := paymentsapi.Start(t)
	rec := &recorder{}
	opts := paymentsOptions(api, rec)
	opts.VerifyToken = func(authorization string) (string, error) {
		switch authorization {
		case "":
			return "", nil
		case "Bearer good":
			return "agent-1", nil
		}
		return "", errors.New("token signature is invalid")
	}
	_, base := startProxy(t, opts)

	req, _ := http.NewRequest("GET", base+"/payments/v1/charges", nil)
	req.Host = "attacker.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("foreign Host: %d, want 403", resp.StatusCode)
	}
	r := send(t, "POST", base+"/payments/v1/charges", `{"amount":1}`, "Origin", "http://attacker.example")
	if pr := problemOf(t, r); r.status != http.StatusForbidden || pr.Code != codeHostNotAllowed {
		t.Errorf("foreign Origin: %d %s", r.status, r.body)
	}
	r = send(t, "POST", base+"/payments/v1/charges", `{"amount":1}`, "Authorization", "Bearer bad")
	if pr := problemOf(t, r); r.status != http.StatusUnauthorized || pr.Code != codeInvalidToken || r.header.Get("WWW-Authenticate") == "" {
		t.Errorf("bad token: %d %v %s", r.status, r.header, r.body)
	}
	if n := len(api.Requests()); n != 0 || rec.count() != 0 {
		t.Fatalf("refused requests went on: %d to the API, %d to the interceptor", n, rec.count())
	}
	r = send(t, "POST", base+"/payments/v1/charges", `{"amount":1}`, "Authorization", "Bearer good", "Origin", "http://localhost:3000")
	if r.status != http.StatusCreated || rec.last(t).TokenSubject != "agent-1" {
		t.Errorf("good token: %d %s, subject %q", r.status, r.body, rec.last(t).TokenSubject)
	}
	if h := api.Requests()[0].Header; h.Get("Authorization") != "" {
		t.Errorf("the agent's token reached the API: %v", h)
	}
}

// TestUnroutedStreams: an unrouted read's answer reaches the agent as the
// upstream sends it (the first event of a stream arrives while the
// upstream holds the rest back). A stream whose agent went away ends at
// the latest with limits.call_timeout (the proxy notices the agent only
// when it next has bytes to write), and the upstream request with it.
func TestUnroutedStreams(t *testing.T) {
	release := make(chan struct{})
	upstreamGone := make(chan struct{}, 2)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
			fmt.Fprint(w, "data: second\n\n")
		case <-r.Context().Done():
			upstreamGone <- struct{}{}
		case <-time.After(10 * time.Second):
		}
	}))
	defer up.Close()
	_, base := startProxy(t, Options{Upstreams: map[string]Upstream{"events": {URL: up.URL}}, CallTimeout: 20 * time.Second})
	_, shortBase := startProxy(t, Options{Upstreams: map[string]Upstream{"events": {URL: up.URL}}, CallTimeout: time.Second})

	firstLine := func(base string) (*http.Response, *bufio.Reader) {
		t.Helper()
		resp, err := http.Get(base + "/events/stream")
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(resp.Body)
		got := make(chan string, 1)
		go func() { line, _ := br.ReadString('\n'); got <- line }()
		select {
		case line := <-got:
			if line != "data: first\n" || resp.Header.Get("Content-Type") != "text/event-stream" {
				t.Fatalf("first line %q (%s), want the first event", line, resp.Header.Get("Content-Type"))
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the first event did not arrive while the upstream held the rest: the answer was buffered")
		}
		return resp, br
	}

	resp, br := firstLine(base)
	close(release)
	rest, err := io.ReadAll(br)
	resp.Body.Close()
	if err != nil || string(rest) != "\ndata: second\n\n" {
		t.Errorf("rest of the stream %q, %v; want the second event", rest, err)
	}

	release = make(chan struct{}) // never closed: the agent leaves first
	resp, _ = firstLine(shortBase)
	resp.Body.Close()
	select {
	case <-upstreamGone:
	case <-time.After(5 * time.Second):
		t.Error("the upstream request went on past the call timeout after the agent left")
	}
}
