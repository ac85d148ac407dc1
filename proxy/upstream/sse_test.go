package upstream

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

const initialize2024 = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"agenthelm-test","version":"0.0.0"}}}`

// TestSSELegacySession runs a 2024-11-05 session against the go-sdk's
// HTTP+SSE handler: every server message arrives on the one stream with
// related=nil; dropping the stream fails the request in flight and closes
// the conn.
func TestSSELegacySession(t *testing.T) {
	st := newSDKTools(t)
	hs := newHarness(t, mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return st.server }, nil), st)
	conn, rec, logs := dialHTTP(t, Spec{Name: "legacy", Transport: "sse", URL: hs.srv.URL + "/sse",
		Headers: map[string]string{"X-Api-Key": "legacy-secret"}})

	send(t, conn, initialize2024)
	init := rec.response(t, "1")
	if init.related != nil {
		t.Errorf("legacy SSE frame related = %s, want nil", init.related)
	}
	send(t, conn, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	send(t, conn, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"legacy"}}}`)
	echo := rec.response(t, "2")
	if !strings.Contains(string(echo.msg.Raw), "Echo: legacy") {
		t.Errorf("echo = %s", echo.msg.Raw)
	}
	stream := hs.requests(http.MethodGet)
	if len(stream) != 1 || !strings.Contains(stream[0].body.String(), string(echo.msg.Raw)) {
		t.Errorf("echo response %s is not byte for byte what the stream carried", echo.msg.Raw)
	}
	for _, p := range hs.requests(http.MethodPost) {
		if p.header.Get("X-Api-Key") != "legacy-secret" || p.header.Get("Content-Type") != "application/json" {
			t.Errorf("POST headers = %v, want the static header and Content-Type", p.header)
		}
	}

	send(t, conn, `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"hang","arguments":{}}}`)
	<-st.hangStarted
	hs.srv.CloseClientConnections() // the network drops
	if err := rec.failure(t, "3"); !errors.Is(err, ErrDisconnected) {
		t.Errorf("RequestFailed(3, %v), want ErrDisconnected", err)
	}
	if err := rec.connClosed(t); !errors.Is(err, ErrDisconnected) {
		t.Errorf("ConnClosed(%v), want ErrDisconnected", err)
	}
	if err := conn.Send(context.Background(), frame(t, `{"jsonrpc":"2.0","id":4,"method":"ping"}`), SendOptions{}); !errors.Is(err, ErrDisconnected) {
		t.Errorf("Send after the drop = %v, want ErrDisconnected", err)
	}
	rec.checkClosedOnce(t)
	if strings.Contains(logs.String(), "legacy-secret") {
		t.Error("a header value was logged")
	}
}

func TestSSELegacyClose(t *testing.T) {
	st := newSDKTools(t)
	hs := newHarness(t, mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return st.server }, nil), st)
	conn, rec, _ := dialHTTP(t, Spec{Transport: "sse", URL: hs.srv.URL})
	send(t, conn, initialize2024)
	rec.response(t, "1")
	closeConn(t, conn)
	if err := rec.connClosed(t); !errors.Is(err, ErrClosed) {
		t.Errorf("ConnClosed(%v), want ErrClosed", err)
	}
	rec.checkClosedOnce(t)
	get := hs.requests(http.MethodGet)[0]
	select {
	case <-get.ctx.Done():
	case <-time.After(5 * time.Second):
		t.Error("the server's stream request was not ended by Close")
	}
}

// TestSSELegacyEndpointOrigin: an endpoint event pointing at another origin
// would send every message and the static headers there; Dial refuses it.
func TestSSELegacyEndpointOrigin(t *testing.T) {
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the other origin got a %s request", r.Method)
	}))
	t.Cleanup(evil.Close)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_ = NewEventWriter(w).WriteEvent(Event{Type: "endpoint", Data: []byte(evil.URL + "/messages?sessionid=x")})
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	_, err := Dial(context.Background(), Spec{Name: "hijack", Transport: "sse", URL: srv.URL}, &recorder{}, nil)
	if err == nil || !strings.Contains(err.Error(), "another origin") || !strings.Contains(err.Error(), `"hijack"`) {
		t.Errorf("Dial = %v, want the cross-origin endpoint refused, naming the upstream", err)
	}
}

// TestSSELegacyEndpointTimeout: Dial's ctx bounds the wait for the
// endpoint event.
func TestSSELegacyEndpointTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_ = NewEventWriter(w).WriteComment("no endpoint coming")
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Dial(ctx, Spec{Name: "mute", Transport: "sse", URL: srv.URL}, &recorder{}, nil)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `"mute"`) {
		t.Errorf("Dial = %v, want DeadlineExceeded naming the upstream", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Dial took %v", d)
	}
}
