package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
	"github.com/agenthelm/agenthelm/proxy/upstream"
	"github.com/agenthelm/agenthelm/toolcall"
)

// Error codes the proxy itself answers with, in JSON-RPC's range for
// implementation-defined server errors.
const (
	// CodeUpstreamUnavailable: the upstream could not be reached, died, or
	// broke the response stream. The message names the upstream.
	CodeUpstreamUnavailable = -32001
	// CodeUpstreamTimeout: the upstream showed no sign of life for a call
	// within limits.call_timeout.
	CodeUpstreamTimeout = -32002
	// CodeSessionClosed: the agent session ended while the request was open.
	CodeSessionClosed = -32003
	// CodeHeaderMismatch: a 2026-07-28 request's mirrored headers disagree
	// with its body (the specification's code, with HTTP 400).
	CodeHeaderMismatch = -32020
)

// maxBacklog bounds the frames an HTTP session keeps for a GET stream that
// the agent has not opened yet.
const maxBacklog = 1024

// sink is where the frames related to one agent request go. For the
// streamable HTTP door it is that POST's response and ends with the
// response; for stdio and legacy SSE it is the one shared stream.
type sink struct {
	st   *stream
	ends bool // the response is the last frame of st
}

// request is an agent request (or one of the proxy's own) awaiting its
// response from the upstream.
type request struct {
	agentID     json.RawMessage // the id the agent used; nil for the proxy's own
	upID        json.RawMessage // the id the upstream sees
	method      string
	out         sink
	progressKey string
	modern      bool // 2026-07-28 semantics: closing the stream cancels

	// Set for intercepted tools/call and the proxy's own requests: the
	// upstream's answer goes here instead of to the agent.
	waiter    chan upstreamReply
	activity  chan struct{}      // pinged on every related upstream frame
	cancel    context.CancelFunc // cancels the interceptor's context
	cancelled bool               // the agent cancelled it
	own       bool               // the proxy's own request (Session.Call)
	forwarded atomic.Bool        // an intercepted call was sent upstream
}

type upstreamReply struct {
	msg *jsonrpc.Message
	err error
}

// Session relays one agent session (or, when shared, the stateless requests
// of many agents) to one upstream connection.
type Session struct {
	id       string
	upstream string
	door     string // "streamable-http", "sse" or "stdio"
	shared   bool   // stateless requests of many agents: ids are rewritten
	p        *Proxy
	log      *slog.Logger
	conn     upstream.Conn

	ctx    context.Context // the session's lifetime
	cancel context.CancelFunc
	wg     sync.WaitGroup // interceptor goroutines

	mu              sync.Mutex
	pending         map[string]*request // by upstream-side id key
	progress        map[string]string   // progress token key -> upstream-side id key
	fallback        *stream             // stdio/SSE stream, or the HTTP GET stream
	backlog         []*jsonrpc.Message  // HTTP: frames waiting for a GET stream
	nextID          int64
	protocolVersion string
	client          toolcall.ClientInfo
	elicitation     bool                             // the client declared the elicitation capability
	asks            map[string]chan *jsonrpc.Message // agenthelm's own requests to the agent
	lastActive      time.Time
	closed          bool
	closeErr        error
	onClose         func(*Session)
	// stateless marks agenthelm's own session with an upstream that only
	// speaks 2026-07-28: each of its requests carries the protocol
	// version, client info and capabilities in _meta (see Call).
	stateless bool
}

func newSession(p *Proxy, id, upstreamName, door string, shared bool) *Session {
	ctx, cancel := context.WithCancel(context.Background())
	return &Session{
		id: id, upstream: upstreamName, door: door, shared: shared, p: p,
		log:        p.log.With("upstream", upstreamName, "door", door, "session", shortID(id)),
		ctx:        ctx,
		cancel:     cancel,
		pending:    map[string]*request{},
		progress:   map[string]string{},
		lastActive: time.Now(),
	}
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// dial connects the session to its upstream.
func (s *Session) dial(ctx context.Context) error {
	spec, ok := s.p.spec(s.upstream)
	if !ok {
		return fmt.Errorf("unknown upstream %q", s.upstream)
	}
	spec.ToolHeaders = s.p.toolHeadersOf(s.upstream)
	// Dial adds upstream=name itself.
	conn, err := upstream.Dial(ctx, spec, s, s.p.log.With("door", s.door, "session", shortID(s.id)))
	if err != nil {
		return fmt.Errorf("upstream %q: %w", s.upstream, err)
	}
	s.conn = conn
	return nil
}

// ID returns the agent-facing session id.
func (s *Session) ID() string { return s.id }

// --- frames from the agent ---------------------------------------------

// handle takes one frame from the agent. Requests are answered on out;
// handle returns once the frame has been passed on (or answered with an
// error). reqCtx is the lifetime of the agent's request where the transport
// has one (an HTTP POST); hdr holds its headers.
func (s *Session) handle(reqCtx context.Context, msg *jsonrpc.Message, out sink, hdr http.Header) {
	s.touch()
	switch msg.Kind {
	case jsonrpc.KindRequest:
		s.handleRequest(reqCtx, msg, out, hdr)
	case jsonrpc.KindNotification:
		if msg.Method == "notifications/cancelled" {
			s.agentCancelled(msg)
		}
		if s.shared && msg.Method == "notifications/cancelled" {
			// Ids are rewritten on shared connections; the agent's
			// requestId means nothing upstream, and stateless clients
			// cancel by closing the stream, which cancelRequest handles.
			return
		}
		if err := s.conn.Send(s.ctx, msg, s.sendOptions(hdr, msg)); err != nil {
			s.log.Warn("notification not delivered upstream", "method", msg.Method, "err", err)
		}
	default: // a response to a server-to-client request
		if s.answerAsk(msg) {
			return // it answered agenthelm's own question (Ask)
		}
		if err := s.conn.Send(s.ctx, msg, s.sendOptions(hdr, msg)); err != nil {
			s.log.Warn("response not delivered upstream", "id", string(msg.ID), "err", err)
		}
	}
}

func (s *Session) handleRequest(reqCtx context.Context, msg *jsonrpc.Message, out sink, hdr http.Header) {
	if msg.Method == "initialize" {
		s.noteInitialize(msg.Params)
	}
	modern := isModern(hdr, msg.Params)
	r := &request{agentID: msg.ID, upID: msg.ID, method: msg.Method, out: out, modern: modern}
	if tok := progressToken(msg.Params); tok != "" {
		r.progressKey = tok
	}
	var ictx context.Context
	if msg.Method == "tools/call" {
		ictx, r.cancel = context.WithCancel(s.ctx)
		r.waiter = make(chan upstreamReply, 1)
		r.activity = make(chan struct{}, 1)
	}
	send := msg
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		if r.cancel != nil {
			r.cancel()
		}
		s.answer(out, jsonrpc.NewErrorResponse(msg.ID, s.closedError()))
		return
	}
	if s.shared {
		s.nextID++
		r.upID = json.RawMessage(strconv.FormatInt(s.nextID, 10))
		var err error
		if send, err = jsonrpc.WithID(msg, r.upID); err != nil {
			s.mu.Unlock()
			s.answer(out, jsonrpc.NewErrorResponse(msg.ID, jsonrpc.Errorf(jsonrpc.CodeInternalError, "rewrite request id: %v", err)))
			return
		}
	}
	key := jsonrpc.IDKey(r.upID)
	if _, dup := s.pending[key]; dup {
		s.mu.Unlock()
		s.answer(out, jsonrpc.NewErrorResponse(msg.ID, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest,
			"invalid request: id %s is already in use by a request in flight", msg.ID)))
		return
	}
	s.pending[key] = r
	if r.progressKey != "" {
		s.progress[r.progressKey] = key
	}
	s.mu.Unlock()

	// In the stateless era, closing the request's stream cancels it.
	if modern && reqCtx != nil {
		stop := context.AfterFunc(reqCtx, func() { s.cancelRequest(key, "client closed the request stream") })
		_ = stop // cleared when the request completes: cancelRequest ignores finished requests
	}

	if ictx != nil {
		s.wg.Add(1)
		go s.interceptToolCall(ictx, r, send, hdr)
		return
	}
	if err := s.conn.Send(s.sendContext(reqCtx, modern), send, s.sendOptions(hdr, send)); err != nil {
		s.requestFailed(key, err)
	}
}

// sendContext is the context that bounds an upstream request: the session's
// lifetime, and for stateless clients also the agent's request stream.
func (s *Session) sendContext(reqCtx context.Context, modern bool) context.Context {
	if modern && reqCtx != nil {
		ctx, cancel := context.WithCancel(s.ctx)
		context.AfterFunc(reqCtx, cancel)
		return ctx
	}
	return s.ctx
}

// agentCancelled handles notifications/cancelled from the agent: an
// intercepted call's context is cancelled so that the interceptor records
// the call as in doubt (it may already have run).
func (s *Session) agentCancelled(msg *jsonrpc.Message) {
	id := jsonrpc.Member(msg.Params, "requestId")
	if id == nil || s.shared {
		return
	}
	key := jsonrpc.IDKey(id)
	s.mu.Lock()
	r := s.pending[key]
	if r != nil {
		r.cancelled = true
		if r.waiter == nil {
			// The upstream may never answer a cancelled request; if it does,
			// the answer is dropped.
			s.deleteLocked(key, r)
		}
	}
	s.mu.Unlock()
	if r == nil {
		return
	}
	if r.cancel != nil {
		r.cancel()
	}
	if r.out.ends {
		// The request's own HTTP response ends now, without an answer:
		// the agent withdrew the request and expects none.
		r.out.st.close(nil)
	}
}

// cancelRequest cancels an open request on the agent's behalf (its stream
// closed in the stateless era): the upstream is told, and the agent gets no
// answer.
func (s *Session) cancelRequest(key, reason string) {
	s.mu.Lock()
	r := s.pending[key]
	if r == nil || r.own {
		s.mu.Unlock()
		return
	}
	r.cancelled = true
	if r.waiter == nil {
		s.deleteLocked(key, r)
	}
	s.mu.Unlock()
	if r.cancel != nil {
		r.cancel()
	}
	params, _ := jsonrpc.Marshal(map[string]any{"requestId": r.upID, "reason": reason})
	if err := s.conn.Send(s.ctx, jsonrpc.NewNotification("notifications/cancelled", params), upstream.SendOptions{}); err != nil {
		s.log.Debug("cancellation not delivered upstream", "err", err)
	}
}

func (s *Session) deleteLocked(key string, r *request) {
	delete(s.pending, key)
	if r.progressKey != "" && s.progress[r.progressKey] == key {
		delete(s.progress, r.progressKey)
	}
}

// --- frames from the upstream (upstream.Handler) -------------------------

var _ upstream.Handler = (*Session)(nil)

// HandleUpstream routes a frame from the upstream to the agent.
func (s *Session) HandleUpstream(msg *jsonrpc.Message, related json.RawMessage) {
	s.touch()
	if msg.IsResponse() {
		s.upstreamResponse(msg)
		return
	}
	s.mu.Lock()
	var r *request
	if related != nil {
		r = s.pending[jsonrpc.IDKey(related)]
	}
	if r == nil && msg.Method == "notifications/progress" {
		if tok := progressTokenOf(msg.Params); tok != "" {
			r = s.pending[s.progress[tok]]
		}
	}
	s.mu.Unlock()
	if r != nil {
		if r.activity != nil {
			select {
			case r.activity <- struct{}{}:
			default:
			}
		}
		if r.own {
			return // progress for the proxy's own request: nobody to show it to
		}
		if r.out.st.push(msg, false) {
			return
		}
	}
	s.toFallback(msg)
}

func (s *Session) upstreamResponse(msg *jsonrpc.Message) {
	key := msg.IDKey()
	s.mu.Lock()
	r := s.pending[key]
	if r == nil {
		s.mu.Unlock()
		s.log.Debug("response for no open request dropped", "id", string(msg.ID))
		return
	}
	if r.waiter != nil {
		s.mu.Unlock()
		select {
		case r.waiter <- upstreamReply{msg: msg}:
		default:
		}
		return
	}
	s.deleteLocked(key, r)
	s.mu.Unlock()
	if r.cancelled {
		return
	}
	if r.method == "tools/list" && len(s.p.opts.ExtraTools) > 0 && msg.Kind == jsonrpc.KindResponse {
		msg = withExtraTools(msg, s.p.opts.ExtraTools, s.log)
	}
	if s.shared {
		var err error
		if msg, err = jsonrpc.WithID(msg, r.agentID); err != nil {
			msg = jsonrpc.NewErrorResponse(r.agentID, jsonrpc.Errorf(jsonrpc.CodeInternalError, "restore request id: %v", err))
		}
	}
	s.answer(r.out, msg)
}

// withExtraTools appends agenthelm's control tools to the last page of a
// tools/list answer. The answer is otherwise left as it was.
func withExtraTools(msg *jsonrpc.Message, extra json.RawMessage, log *slog.Logger) *jsonrpc.Message {
	if jsonrpc.Member(msg.Result, "nextCursor") != nil {
		return msg // not the last page
	}
	var tools []json.RawMessage
	if err := json.Unmarshal(jsonrpc.Member(msg.Result, "tools"), &tools); err != nil {
		return msg
	}
	var more []json.RawMessage
	if err := json.Unmarshal(extra, &more); err != nil {
		return msg
	}
	list, err := jsonrpc.Marshal(append(tools, more...))
	if err != nil {
		return msg
	}
	result, err := jsonrpc.SetMember(msg.Result, "tools", list)
	if err != nil {
		log.Warn("control tools not added to tools/list", "err", err)
		return msg
	}
	raw, err := jsonrpc.SetMember(msg.Raw, "result", result)
	if err != nil {
		return msg
	}
	out, perr := jsonrpc.Parse(raw)
	if perr != nil {
		return msg
	}
	return out
}

// RequestFailed answers a request the upstream will not answer.
func (s *Session) RequestFailed(id json.RawMessage, err error) {
	s.requestFailed(jsonrpc.IDKey(id), err)
}

func (s *Session) requestFailed(key string, err error) {
	s.mu.Lock()
	r := s.pending[key]
	if r == nil {
		s.mu.Unlock()
		return
	}
	if r.waiter != nil {
		s.mu.Unlock()
		select {
		case r.waiter <- upstreamReply{err: err}:
		default:
		}
		return
	}
	s.deleteLocked(key, r)
	s.mu.Unlock()
	if !r.cancelled {
		s.answer(r.out, jsonrpc.NewErrorResponse(r.agentID, s.upstreamError(err)))
	}
}

// ConnClosed ends the session: its upstream is gone.
func (s *Session) ConnClosed(err error) {
	if err == nil || errors.Is(err, upstream.ErrClosed) {
		err = upstream.ErrClosed
	}
	s.log.Info("upstream connection closed", "err", err)
	s.shutdown(err)
}

// upstreamError renders a transport failure for the agent. The message
// always names the upstream.
func (s *Session) upstreamError(err error) *jsonrpc.Error {
	var rpcErr *jsonrpc.Error
	if errors.As(err, &rpcErr) {
		return rpcErr
	}
	code := CodeUpstreamUnavailable
	if errors.Is(err, errCallTimeout) {
		code = CodeUpstreamTimeout
	}
	if strings.Contains(err.Error(), strconv.Quote(s.upstream)) {
		return jsonrpc.Errorf(code, "%v", err) // already names the upstream
	}
	return jsonrpc.Errorf(code, "upstream %q: %v", s.upstream, err)
}

func (s *Session) closedError() *jsonrpc.Error {
	s.mu.Lock()
	err := s.closeErr
	s.mu.Unlock()
	if err == nil || errors.Is(err, upstream.ErrClosed) {
		return jsonrpc.Errorf(CodeSessionClosed, "session to upstream %q is closed", s.upstream)
	}
	return s.upstreamError(err)
}

// answer queues a response on a request's sink.
func (s *Session) answer(out sink, msg *jsonrpc.Message) {
	if !out.st.push(msg, out.ends) && !out.ends {
		s.log.Debug("answer dropped: stream closed", "id", string(msg.ID))
	}
}

// toFallback delivers a frame that belongs to no open request stream.
func (s *Session) toFallback(msg *jsonrpc.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fallback != nil && s.fallback.push(msg, false) {
		return
	}
	// Streamable HTTP with no GET stream: use the newest open POST stream,
	// which the spec allows for messages related to the session.
	var newest *request
	for _, r := range s.pending {
		if !r.own && r.out.st.accepting() && (newest == nil || laterID(r, newest)) {
			newest = r
		}
	}
	if newest != nil && newest.out.st.push(msg, false) {
		return
	}
	if len(s.backlog) >= maxBacklog {
		s.log.Warn("frame dropped: no agent stream open and the backlog is full", "method", msg.Method)
		return
	}
	s.backlog = append(s.backlog, msg)
}

func laterID(a, b *request) bool { return jsonrpc.IDKey(a.upID) > jsonrpc.IDKey(b.upID) }

// attachFallback makes st the session's stream for frames not tied to a
// request (the HTTP GET stream) and flushes the backlog into it. It reports
// false if the session already has one.
func (s *Session) attachFallback(st *stream) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fallback != nil && s.fallback.accepting() {
		return false
	}
	s.fallback = st
	for _, m := range s.backlog {
		st.push(m, false)
	}
	s.backlog = nil
	return true
}

func (s *Session) detachFallback(st *stream) {
	s.mu.Lock()
	if s.fallback == st {
		s.fallback = nil
	}
	s.mu.Unlock()
	st.close(nil)
}

// --- lifecycle ---------------------------------------------------------------

func (s *Session) touch() {
	s.mu.Lock()
	s.lastActive = time.Now()
	s.mu.Unlock()
}

func (s *Session) idleSince() (time.Time, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastActive, len(s.pending)
}

// inFlight reports how many requests are open.
func (s *Session) inFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// shutdown fails every open request with err and ends the session; the
// upstream connection is closed by Close.
func (s *Session) shutdown(err error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed, s.closeErr = true, err
	pending := s.pending
	s.pending = map[string]*request{}
	s.progress = map[string]string{}
	fallback := s.fallback
	onClose := s.onClose
	s.mu.Unlock()
	for _, r := range pending {
		if r.waiter != nil {
			select {
			case r.waiter <- upstreamReply{err: err}:
			default:
			}
			continue
		}
		if !r.cancelled && !r.own {
			s.answer(r.out, jsonrpc.NewErrorResponse(r.agentID, s.upstreamError(err)))
		}
	}
	if fallback != nil && s.door != "stdio" {
		fallback.close(err)
	}
	if onClose != nil {
		onClose(s)
	}
}

// Close ends the session: open requests get an error, interceptors finish,
// and the upstream connection is closed.
func (s *Session) Close(ctx context.Context) error {
	s.shutdown(upstream.ErrClosed)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.cancel()
		<-done
	}
	s.cancel()
	if s.conn != nil {
		return s.conn.Close(ctx)
	}
	return nil
}

// drain waits until every open request is answered or ctx ends.
func (s *Session) drain(ctx context.Context) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for s.inFlight() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// --- helpers -----------------------------------------------------------------

func (s *Session) noteInitialize(params json.RawMessage) {
	var p struct {
		ProtocolVersion string              `json:"protocolVersion"`
		ClientInfo      toolcall.ClientInfo `json:"clientInfo"`
		Capabilities    struct {
			Elicitation json.RawMessage `json:"elicitation"`
		} `json:"capabilities"`
	}
	_ = json.Unmarshal(params, &p)
	s.mu.Lock()
	s.protocolVersion, s.client = p.ProtocolVersion, p.ClientInfo
	s.elicitation = len(p.Capabilities.Elicitation) > 0 && string(p.Capabilities.Elicitation) != "null"
	s.mu.Unlock()
}

// sendOptions picks the agent's MCP headers that an HTTP upstream needs.
// Credentials are never passed on (no token passthrough).
func (s *Session) sendOptions(hdr http.Header, msg *jsonrpc.Message) upstream.SendOptions {
	if hdr == nil {
		return upstream.SendOptions{}
	}
	out := http.Header{}
	for k, v := range hdr {
		ck := http.CanonicalHeaderKey(k)
		switch {
		case ck == "Mcp-Protocol-Version", ck == "Mcp-Method", ck == "Mcp-Name", len(ck) > 10 && ck[:10] == "Mcp-Param-":
			out[ck] = v
		}
	}
	return upstream.SendOptions{Header: out}
}

const modernVersion = "2026-07-28"

// isModern reports whether a request follows the stateless 2026-07-28
// revision (or newer), from its header or its _meta.
func isModern(hdr http.Header, params json.RawMessage) bool {
	return headerOrMeta(hdr, params) >= modernVersion
}

// progressToken returns the canonical key of a request's progress token.
func progressToken(params json.RawMessage) string {
	meta := jsonrpc.Member(params, "_meta")
	if meta == nil {
		return ""
	}
	if tok := jsonrpc.Member(meta, "progressToken"); tok != nil {
		return jsonrpc.IDKey(tok)
	}
	return ""
}

// progressTokenOf returns the canonical key of a progress notification's token.
func progressTokenOf(params json.RawMessage) string {
	if tok := jsonrpc.Member(params, "progressToken"); tok != nil {
		return jsonrpc.IDKey(tok)
	}
	return ""
}

var errProxyClosed = errors.New("agenthelm is shutting down")

// withdrawUnsent cancels the intercepted calls that were not sent upstream
// yet (held for approval, capturing): the agent is gone, so nobody waits
// for them. Calls already sent are left to finish, so that their outcome
// is known.
func (s *Session) withdrawUnsent() {
	s.mu.Lock()
	var cancel []context.CancelFunc
	for _, r := range s.pending {
		if r.cancel != nil && !r.forwarded.Load() {
			r.cancelled = true
			cancel = append(cancel, r.cancel)
		}
	}
	s.mu.Unlock()
	for _, c := range cancel {
		c()
	}
}
