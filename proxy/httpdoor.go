package proxy

import (
	"context"
	"errors"
	"github.com/agenthelm/agenthelm/proxy/hostcheck"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
	"github.com/agenthelm/agenthelm/proxy/upstream"
)

// Handler returns the HTTP handler of the MCP front door: streamable HTTP at
// /mcp/<upstream> and legacy HTTP+SSE at /sse/<upstream> (its messages at
// /sse/<upstream>/message).
func (p *Proxy) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/mcp/{upstream}", p.guard(p.serveStreamable))
	mux.HandleFunc("/sse/{upstream}", p.guard(p.serveSSE))
	mux.HandleFunc("/sse/{upstream}/message", p.guard(p.serveSSEMessage))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeHTTPError(w, http.StatusNotFound, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest,
			"no MCP endpoint at %s: use /mcp/<upstream> (streamable HTTP) or /sse/<upstream> (legacy SSE); configured upstreams: %s",
			r.URL.Path, strings.Join(p.UpstreamNames(), ", ")))
	})
	return mux
}

// guard rejects requests whose Host or Origin is not a name this proxy
// answers to (DNS rebinding protection) and requests for unknown upstreams.
func (p *Proxy) guard(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !p.hostAllowed(r.Host) {
			writeHTTPError(w, http.StatusForbidden, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest,
				"host %q is not allowed (DNS rebinding protection); add it to the allowed hosts to accept it", r.Host))
			return
		}
		if o := r.Header.Get("Origin"); o != "" {
			u, err := url.Parse(o)
			if err != nil || !p.hostAllowed(u.Host) {
				writeHTTPError(w, http.StatusForbidden, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest,
					"origin %q is not allowed (DNS rebinding protection)", o))
				return
			}
		}
		// Before the upstream check: an agent without a valid token does
		// not learn the upstreams' names.
		if p.opts.VerifyToken != nil {
			if _, err := p.opts.VerifyToken(r.Header.Get("Authorization")); err != nil {
				p.log.Warn("request refused: bearer token not accepted", "remote", r.RemoteAddr, "err", err)
				w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
				writeHTTPError(w, http.StatusUnauthorized, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "%v", err))
				return
			}
		}
		if _, ok := p.opts.Upstreams[r.PathValue("upstream")]; !ok {
			writeHTTPError(w, http.StatusNotFound, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "%v", p.unknownUpstream(r.PathValue("upstream"))))
			return
		}
		h(w, r)
	}
}

// hostAllowed: see hostcheck.Allowed.
func (p *Proxy) hostAllowed(hostport string) bool {
	return hostcheck.Allowed(hostport, p.opts.AllowedHosts)
}

// readFrame reads and parses a POST body, answering the agent itself when
// the body is too large or not a JSON-RPC message.
func (p *Proxy) readFrame(w http.ResponseWriter, r *http.Request) (*jsonrpc.Message, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, p.opts.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeHTTPError(w, http.StatusRequestEntityTooLarge, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest,
				"invalid request: body exceeds the limit of %d bytes", p.opts.MaxBodyBytes))
			return nil, false
		}
		writeHTTPError(w, http.StatusBadRequest, nil, jsonrpc.Errorf(jsonrpc.CodeParseError, "parse error: reading body: %v", err))
		return nil, false
	}
	msg, rpcErr := jsonrpc.Parse(body)
	if rpcErr != nil {
		var id []byte
		if msg != nil {
			id = msg.ID
		}
		writeHTTPError(w, http.StatusBadRequest, id, rpcErr)
		return nil, false
	}
	return msg, true
}

// serveStreamable is the streamable HTTP transport (2025-03-26 and later).
func (p *Proxy) serveStreamable(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("upstream")
	sid := r.Header.Get("Mcp-Session-Id")
	switch r.Method {
	case http.MethodPost:
	case http.MethodGet:
		p.serveGET(w, r, name, sid)
		return
	case http.MethodDelete:
		s := p.session(sid)
		if sid == "" || s == nil || s.upstream != name {
			writeHTTPError(w, http.StatusNotFound, nil, jsonrpc.Errorf(CodeSessionClosed, "session not found"))
			return
		}
		_ = p.closeSession(r.Context(), s)
		w.WriteHeader(http.StatusOK)
		return
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		writeHTTPError(w, http.StatusMethodNotAllowed, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "method %s not allowed", r.Method))
		return
	}

	msg, ok := p.readFrame(w, r)
	if !ok {
		return
	}
	if v := r.Header.Get("Mcp-Protocol-Version"); v != "" && !knownVersions[v] {
		writeHTTPError(w, http.StatusBadRequest, msg.ID, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest,
			"unsupported MCP-Protocol-Version %q: agenthelm relays %s", v, strings.Join(versionList, ", ")))
		return
	}
	if msg.Kind == jsonrpc.KindRequest && isModern(r.Header, msg.Params) {
		if err := upstream.Mismatch(r.Header, msg, p.learnedToolHeaders(name)); err != nil {
			header := ""
			if me := (*upstream.MismatchError)(nil); errors.As(err, &me) {
				header = me.Header
			}
			p.log.Warn("request refused: a header disagrees with the body", "upstream", name, "method", msg.Method, "header", header)
			writeHTTPError(w, http.StatusBadRequest, msg.ID, jsonrpc.Errorf(CodeHeaderMismatch, "%v", err))
			return
		}
	}
	var s *Session
	newSession := false
	switch {
	case sid != "":
		s = p.session(sid)
		if s == nil || s.upstream != name {
			// The spec's signal to start a new session.
			writeHTTPError(w, http.StatusNotFound, msg.ID, jsonrpc.Errorf(CodeSessionClosed,
				"session not found: it ended or the upstream %q went away; initialize a new session", name))
			return
		}
	case msg.Kind == jsonrpc.KindRequest && msg.Method == "initialize":
		var err error
		if s, err = p.openSession(r.Context(), name, "streamable-http"); err != nil {
			p.log.Warn("session not opened", "upstream", name, "err", err)
			writeHTTPError(w, http.StatusBadGateway, msg.ID, jsonrpc.Errorf(CodeUpstreamUnavailable, "%v", err))
			return
		}
		newSession = true
	default:
		var err error
		if s, err = p.sharedSession(r.Context(), name); err != nil {
			writeHTTPError(w, http.StatusBadGateway, msg.ID, jsonrpc.Errorf(CodeUpstreamUnavailable, "%v", err))
			return
		}
	}

	if msg.Kind != jsonrpc.KindRequest {
		s.handle(r.Context(), msg, sink{}, r.Header)
		w.WriteHeader(http.StatusAccepted)
		return
	}

	out := newStream()
	s.handle(r.Context(), msg, sink{st: out, ends: true}, r.Header)
	sw := &lazyWriter{w: w, sse: acceptsSSE(r)}
	if newSession {
		sw.header = func(h http.Header) { h.Set("Mcp-Session-Id", s.id) }
	}
	final, err := pump(r.Context(), out, sw)
	if newSession && (!final || sw.lastWasError) {
		// The handshake failed: nothing will use this session.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), closeWait)
		_ = p.closeSession(cctx, s)
		cancel()
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.Debug("response stream ended", "err", err)
	}
}

// serveGET opens the session's stream for server-initiated messages.
func (p *Proxy) serveGET(w http.ResponseWriter, r *http.Request, name, sid string) {
	if sid == "" {
		w.Header().Set("Allow", "POST")
		writeHTTPError(w, http.StatusMethodNotAllowed, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest,
			"GET needs an Mcp-Session-Id: stateless clients receive messages on their POST streams"))
		return
	}
	s := p.session(sid)
	if s == nil || s.upstream != name {
		writeHTTPError(w, http.StatusNotFound, nil, jsonrpc.Errorf(CodeSessionClosed, "session not found"))
		return
	}
	st := newStream()
	if !s.attachFallback(st) {
		writeHTTPError(w, http.StatusConflict, nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "this session already has a GET stream open"))
		return
	}
	defer s.detachFallback(st)
	sw := &lazyWriter{w: w, sse: true}
	if err := sw.start(); err != nil {
		return
	}
	_, _ = pump(p.streamContext(r.Context()), st, sw)
}

// streamContext is ctx, ended also by CloseStreams: for streams that only
// end when the agent hangs up.
func (p *Proxy) streamContext(ctx context.Context) context.Context {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-p.streamsDone:
		case <-ctx.Done():
		}
		cancel()
	}()
	return ctx
}

func acceptsSSE(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		if strings.Contains(v, "text/event-stream") {
			return true
		}
	}
	return false
}

// frameWriter writes frames to an agent's HTTP response or stdout.
type frameWriter interface {
	write(frames []*jsonrpc.Message, final bool) error
}

// pump copies frames from st to w until the final frame, the stream's
// close, or ctx's end. It reports whether the final frame was written.
func pump(ctx context.Context, st *stream, w frameWriter) (bool, error) {
	for {
		frames, final, closed, err := st.take()
		if len(frames) > 0 {
			if werr := w.write(frames, final); werr != nil {
				st.close(werr)
				return false, werr
			}
		}
		if final {
			return true, nil
		}
		if closed {
			return false, err
		}
		select {
		case <-st.notify:
		case <-ctx.Done():
			st.close(ctx.Err())
			return false, ctx.Err()
		}
	}
}

// lazyWriter answers a POST with plain JSON when the response is the only
// frame, and switches to an SSE stream as soon as anything else comes
// first (progress, log messages, server-to-client requests).
type lazyWriter struct {
	w            http.ResponseWriter
	sse          bool // the agent accepts text/event-stream
	started      bool
	streaming    bool
	header       func(http.Header)
	lastWasError bool
	events       *upstream.EventWriter // once streaming
}

func (lw *lazyWriter) start() error {
	if lw.header != nil {
		lw.header(lw.w.Header())
	}
	h := lw.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	lw.w.WriteHeader(http.StatusOK)
	lw.started, lw.streaming = true, true
	lw.events = upstream.NewEventWriter(lw.w)
	return http.NewResponseController(lw.w).Flush()
}

func (lw *lazyWriter) write(frames []*jsonrpc.Message, final bool) error {
	if len(frames) > 0 {
		lw.lastWasError = frames[len(frames)-1].Kind == jsonrpc.KindErrorResponse
	}
	if !lw.started && final && len(frames) == 1 || !lw.started && !lw.sse {
		// Only the response: plain JSON. (An agent that does not accept
		// SSE gets only the response; notifications for it are dropped.)
		last := frames[len(frames)-1]
		if !final {
			return nil
		}
		if lw.header != nil && last.Kind != jsonrpc.KindErrorResponse {
			lw.header(lw.w.Header()) // no session for a failed handshake
		}
		lw.w.Header().Set("Content-Type", "application/json")
		lw.w.WriteHeader(http.StatusOK)
		lw.started = true
		_, err := lw.w.Write(last.Raw)
		return err
	}
	if !lw.started {
		if err := lw.start(); err != nil {
			return err
		}
	}
	for _, f := range frames {
		if err := lw.events.WriteEvent(upstream.Event{Data: f.Raw}); err != nil {
			return err
		}
	}
	return nil
}

// writeHTTPError answers with a JSON-RPC error object as the body.
func writeHTTPError(w http.ResponseWriter, status int, id []byte, e *jsonrpc.Error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(jsonrpc.NewErrorResponse(id, e).Raw)
}

// versionList holds the MCP revisions agenthelm relays; a request whose
// MCP-Protocol-Version header names another gets 400, as the specification
// asks of servers.
var versionList = []string{"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"}

var knownVersions = func() map[string]bool {
	m := map[string]bool{}
	for _, v := range versionList {
		m[v] = true
	}
	return m
}()
