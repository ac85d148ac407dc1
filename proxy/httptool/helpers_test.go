package httptool

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/internal/paymentsapi"
	"github.com/agenthelm/agenthelm/toolcall"
)

// paymentRoutes are the routes the tests declare on upstream payments.
var paymentRoutes = []Route{
	{Upstream: "payments", Method: "POST", Path: "/v1/charges", Tool: "charge"},
	{Upstream: "payments", Method: "GET", Path: "/v1/charges/{id}", Tool: "get_charge"},
	{Upstream: "payments", Method: "DELETE", Path: "/v1/charges/{id}", Tool: "cancel_charge"},
	{Upstream: "payments", Method: "DELETE", Path: "/v1/charges/all", Tool: "cancel_all"},
	{Upstream: "payments", Method: "POST", Path: "/v1/fail", Tool: "fail"},
	{Upstream: "payments", Method: "POST", Path: "/v1/slow", Tool: "slow"},
}

// startProxy serves a proxy for opts on 127.0.0.1 until the test ends and
// returns its base URL.
func startProxy(t testing.TB, opts Options) (*Proxy, string) {
	t.Helper()
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return p, "http://" + ln.Addr().String()
}

// closedURL returns an http:// base URL on 127.0.0.1 where nothing listens.
func closedURL(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return "http://" + ln.Addr().String()
}

// interceptorFunc is an Interceptor made of a function.
type interceptorFunc func(ctx context.Context, call *toolcall.Call, forward toolcall.Forward) (toolcall.Result, error)

func (f interceptorFunc) InterceptToolCall(ctx context.Context, call *toolcall.Call, forward toolcall.Forward) (toolcall.Result, error) {
	return f(ctx, call, forward)
}

// recorder passes calls through and keeps them.
type recorder struct {
	mu    sync.Mutex
	calls []*toolcall.Call
}

func (r *recorder) InterceptToolCall(ctx context.Context, call *toolcall.Call, forward toolcall.Forward) (toolcall.Result, error) {
	r.mu.Lock()
	r.calls = append(r.calls, call)
	r.mu.Unlock()
	return forward(ctx, call.Params)
}

func (r *recorder) last(t *testing.T) *toolcall.Call {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.calls) == 0 {
		t.Fatal("the interceptor saw no call")
	}
	return r.calls[len(r.calls)-1]
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

// reply is an HTTP response, read.
type reply struct {
	status int
	header http.Header
	body   string
}

// send makes a request to url (its path sent as written: Go's client
// neither cleans nor re-encodes it) with headers given as name, value
// pairs.
func send(t testing.TB, method, url, body string, headers ...string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	if body != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// problemOf decodes a problem+json answer.
func problemOf(t testing.TB, r reply) problem {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json (status %d, body %s)", ct, r.status, r.body)
	}
	var pr problem
	if err := json.Unmarshal([]byte(r.body), &pr); err != nil {
		t.Fatalf("problem body %s: %v", r.body, err)
	}
	if pr.Status != r.status || pr.Type != "about:blank" || pr.Title != http.StatusText(r.status) {
		t.Errorf("problem %s: want type about:blank, status %d and its title", r.body, r.status)
	}
	return pr
}

// paymentsOptions are options for a proxy in front of api.
func paymentsOptions(api *paymentsapi.API, ic toolcall.Interceptor) Options {
	return Options{
		Upstreams: map[string]Upstream{
			"payments": {URL: api.URL, Headers: map[string]string{"X-Api-Key": "sk_test_configured"}},
		},
		Routes:      paymentRoutes,
		Interceptor: ic,
		AgentHeader: "X-Agent-Id",
	}
}
