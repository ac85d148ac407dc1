package proxy

import (
	"context"
	"net/http"
	"net/url"

	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
	"github.com/agenthelm/agenthelm/proxy/upstream"
)

// serveSSE is the legacy HTTP+SSE transport (protocol 2024-11-05): a GET
// opens the session's one stream, whose first event names the endpoint the
// agent POSTs its messages to. Every answer travels on the stream.
func (p *Proxy) serveSSE(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		writeHTTPError(w, http.StatusMethodNotAllowed, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest,
			"the legacy SSE endpoint takes GET; POST messages to the endpoint it announces"))
		return
	}
	name := r.PathValue("upstream")
	s, err := p.openSession(r.Context(), name, "sse")
	if err != nil {
		writeHTTPError(w, http.StatusBadGateway, nil, jsonrpc.Errorf(CodeUpstreamUnavailable, "%v", err))
		return
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), closeWait)
		_ = p.closeSession(cctx, s)
		cancel()
	}()
	st := newStream()
	s.attachFallback(st)

	sw := &lazyWriter{w: w, sse: true}
	if err := sw.start(); err != nil {
		return
	}
	endpoint := "/sse/" + url.PathEscape(name) + "/message?sessionId=" + s.id
	if err := upstream.NewEventWriter(w).WriteEvent(upstream.Event{Type: "endpoint", Data: []byte(endpoint)}); err != nil {
		return
	}
	_, _ = pump(p.streamContext(r.Context()), st, sw)
}

// serveSSEMessage takes one message for a legacy SSE session.
func (p *Proxy) serveSSEMessage(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeHTTPError(w, http.StatusMethodNotAllowed, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "method %s not allowed", r.Method))
		return
	}
	s := p.session(r.URL.Query().Get("sessionId"))
	if s == nil || s.door != "sse" || s.upstream != r.PathValue("upstream") {
		writeHTTPError(w, http.StatusNotFound, nil, jsonrpc.Errorf(CodeSessionClosed, "session not found: open a new SSE stream"))
		return
	}
	msg, ok := p.readFrame(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	st := s.fallback
	s.mu.Unlock()
	if st == nil {
		writeHTTPError(w, http.StatusNotFound, msg.ID, jsonrpc.Errorf(CodeSessionClosed, "session stream is closed"))
		return
	}
	// The POST only carries the message: its answer goes on the stream, and
	// closing this POST cancels nothing.
	s.handle(context.Background(), msg, sink{st: st}, nil)
	w.WriteHeader(http.StatusAccepted)
}
