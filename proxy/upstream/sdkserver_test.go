package upstream

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// sdkTools is a real MCP server built with the official go-sdk, with tools
// that exercise what the transports must carry.
type sdkTools struct {
	server        *mcp.Server
	hangStarted   chan struct{}
	hangCancelled chan struct{}
	release       chan struct{} // closed by stop, so no handler outlives the test
	startOnce     sync.Once
	cancelOnce    sync.Once
	stopOnce      sync.Once
}

// stop releases every tool handler still running. The go-sdk waits for
// running handlers when a session closes, and httptest.Server.Close waits
// for the requests, so this must come before the server closes.
func (st *sdkTools) stop() { st.stopOnce.Do(func() { close(st.release) }) }

type echoIn struct {
	Message string `json:"message"`
}

func newSDKTools(t *testing.T) *sdkTools {
	st := &sdkTools{
		server:        mcp.NewServer(&mcp.Implementation{Name: "sdk-test", Version: "1.0.0"}, nil),
		hangStarted:   make(chan struct{}),
		hangCancelled: make(chan struct{}),
		release:       make(chan struct{}),
	}
	text := func(s string) *mcp.CallToolResult {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
	}
	mcp.AddTool(st.server, &mcp.Tool{Name: "echo", Description: "echo the message"},
		func(ctx context.Context, req *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, any, error) {
			return text("Echo: " + in.Message), nil, nil
		})
	mcp.AddTool(st.server, &mcp.Tool{Name: "progress", Description: "report progress and log, then finish"},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			token := req.Params.GetProgressToken()
			for i := 1; i <= 3; i++ {
				if token != nil {
					_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: token, Progress: float64(i), Total: 3})
				}
				//lint:ignore SA1019 the 2025-11-25 era still has logging, and agents use it
				_ = req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Data: "step"})
			}
			return text("done"), nil, nil
		})
	mcp.AddTool(st.server, &mcp.Tool{Name: "hang", Description: "block until cancelled"},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			st.startOnce.Do(func() { close(st.hangStarted) })
			select {
			case <-ctx.Done():
				st.cancelOnce.Do(func() { close(st.hangCancelled) })
				return nil, nil, ctx.Err()
			case <-st.release:
				return text("released"), nil, nil
			}
		})
	mcp.AddTool(st.server, &mcp.Tool{Name: "slow", Description: "finish after a while"},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			select {
			case <-time.After(300 * time.Millisecond):
			case <-st.release:
			}
			return text("slow done"), nil, nil
		})
	mcp.AddTool(st.server, &mcp.Tool{Name: "resume", Description: "close the SSE stream midway (SEP-1699)"},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			token := req.Params.GetProgressToken()
			_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: token, Progress: 1, Total: 2})
			if req.Extra != nil && req.Extra.CloseSSEStream != nil {
				req.Extra.CloseSSEStream(mcp.CloseSSEStreamArgs{RetryAfter: 20 * time.Millisecond})
			}
			time.Sleep(50 * time.Millisecond)
			_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: token, Progress: 2, Total: 2})
			return text("resumed"), nil, nil
		})
	return st
}

// seenRequest is what the harness observed of one HTTP request.
type seenRequest struct {
	method string
	header http.Header
	ctx    context.Context
	body   *syncBuffer // the response body as the server wrote it
}

// harness serves a swappable handler on 127.0.0.1 and records every
// request and response body.
type harness struct {
	srv     *httptest.Server
	handler atomic.Pointer[http.Handler]
	// cutFirstGET ends the first GET stream after a while, as a network
	// drop would.
	cutFirstGET time.Duration

	mu   sync.Mutex
	seen []*seenRequest
	gets int
}

// newHarness serves h; st (may be nil) is stopped before the server closes.
func newHarness(t *testing.T, h http.Handler, st *sdkTools) *harness {
	hs := &harness{}
	hs.setHandler(h)
	hs.srv = httptest.NewServer(http.HandlerFunc(hs.serve))
	t.Cleanup(func() {
		if st != nil {
			st.stop()
		}
		hs.srv.Close()
	})
	return hs
}

func (hs *harness) setHandler(h http.Handler) { hs.handler.Store(&h) }

func (hs *harness) serve(w http.ResponseWriter, r *http.Request) {
	sr := &seenRequest{method: r.Method, header: r.Header.Clone(), ctx: r.Context(), body: &syncBuffer{}}
	hs.mu.Lock()
	hs.seen = append(hs.seen, sr)
	if r.Method == http.MethodGet && r.Header.Get("Last-Event-ID") == "" {
		hs.gets++
		if hs.gets == 1 && hs.cutFirstGET > 0 {
			ctx, cancel := context.WithTimeout(r.Context(), hs.cutFirstGET)
			defer cancel()
			r = r.WithContext(ctx)
		}
	}
	hs.mu.Unlock()
	(*hs.handler.Load()).ServeHTTP(&teeWriter{ResponseWriter: w, sr: sr}, r)
}

func (hs *harness) requests(method string) []*seenRequest {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	var out []*seenRequest
	for _, sr := range hs.seen {
		if method == "" || sr.method == method {
			out = append(out, sr)
		}
	}
	return out
}

// postFor returns the last POST whose response body holds rawFrame.
func (hs *harness) postFor(rawFrame []byte) *seenRequest {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	for i := len(hs.seen) - 1; i >= 0; i-- {
		if hs.seen[i].method == http.MethodPost && bytes.Contains([]byte(hs.seen[i].body.String()), rawFrame) {
			return hs.seen[i]
		}
	}
	return nil
}

type teeWriter struct {
	http.ResponseWriter
	sr *seenRequest
}

func (tw *teeWriter) Write(p []byte) (int, error) {
	tw.sr.body.Write(p)
	return tw.ResponseWriter.Write(p)
}

func (tw *teeWriter) Flush() {
	if f, ok := tw.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (tw *teeWriter) Unwrap() http.ResponseWriter { return tw.ResponseWriter }
