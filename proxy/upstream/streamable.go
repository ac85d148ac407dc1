package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
)

// Reconnection bounds for the streamable HTTP client. Variables so that
// tests can shorten them.
var (
	// listenMaxFailures is how many times in a row the GET stream may fail
	// (or end without delivering anything) before the conn stops reopening it.
	listenMaxFailures = 8
	// reconnectBaseDelay is the first delay before reopening a stream when
	// the server gave no retry field; it doubles per failure.
	reconnectBaseDelay = 100 * time.Millisecond
	// reconnectMaxDelay caps any reconnection delay, including the server's.
	reconnectMaxDelay = 10 * time.Second
	// resumeMaxAttempts is how many resumptions of a request's stream in a
	// row may bring nothing new before the request is failed.
	resumeMaxAttempts = 2
	// deleteTimeout bounds the DELETE sent by Close (a courtesy to the
	// server, which may hold it until its running handlers finish).
	deleteTimeout = 2 * time.Second
)

// versionStateless is the first revision without sessions, the GET stream
// or resumable streams.
const versionStateless = "2026-07-28"

// streamableConn is a client of the streamable HTTP transport, both eras:
// sessions, the GET stream and resumption (up to 2025-11-25), and stateless
// requests with mirrored headers (2026-07-28). Each Send is one POST; a
// request's response stream is read by its own goroutine.
type streamableConn struct {
	name   string
	url    *url.URL
	static map[string]string
	client *http.Client
	h      Handler
	log    *slog.Logger
	limit  int
	tools  *ToolHeaders

	// ctx lives as long as the conn; every request and stream context is
	// cancelled with it.
	ctx    context.Context
	cancel context.CancelCauseFunc
	// wg counts every goroutine (and Send call) that may call the Handler;
	// ConnClosed waits for it.
	wg sync.WaitGroup

	mu           sync.Mutex
	err          error  // why the conn is gone; nil while open
	sessionID    string // from the server's Mcp-Session-Id
	sessionGone  bool   // the server said the session no longer exists
	version      string // protocol version from the initialize result
	initID       string // IDKey of the initialize request in flight
	initialized  bool   // an initialize succeeded
	initNotified bool   // notifications/initialized was accepted
	listening    bool   // the GET stream goroutine was started
	// listing holds the IDKeys of tools/list requests whose answers are
	// still to come, to learn their tools' header bindings.
	listing map[string]bool

	closeOnce sync.Once
	done      chan struct{} // closed after ConnClosed returned
}

var _ Conn = (*streamableConn)(nil)

func dialStreamable(spec Spec, u *url.URL, h Handler, log *slog.Logger) *streamableConn {
	ctx, cancel := context.WithCancelCause(context.Background())
	c := &streamableConn{
		name:   spec.Name,
		url:    u,
		static: spec.Headers,
		client: newHTTPClient(spec.HTTPClient),
		h:      h,
		log:    log,
		limit:  spec.MaxFrameBytes,
		tools:  spec.ToolHeaders,
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
	if c.tools == nil {
		c.tools = NewToolHeaders()
	}
	go c.supervise()
	return c
}

// supervise reports ConnClosed once the conn is cancelled and every
// goroutine that could still call the Handler has finished.
func (c *streamableConn) supervise() {
	defer close(c.done)
	<-c.ctx.Done()
	c.wg.Wait()
	c.h.ConnClosed(c.Err())
}

// begin registers a unit of work that may call the Handler, unless the conn
// is gone.
func (c *streamableConn) begin() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	c.wg.Add(1)
	return nil
}

// fail ends the conn with err (the first error wins).
func (c *streamableConn) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	err = c.err
	c.mu.Unlock()
	c.cancel(err)
}

// Send POSTs one frame. For a request it returns once the request is
// written; the response (and everything else on its stream) reaches the
// Handler from a goroutine that stops when ctx ends or the conn closes. A
// notification or response must be accepted with a 2xx status, or Send
// returns a *StatusError.
func (c *streamableConn) Send(ctx context.Context, msg *jsonrpc.Message, opts SendOptions) error {
	if err := c.begin(); err != nil {
		return err
	}
	handedOff := false
	defer func() {
		if !handedOff {
			c.wg.Done()
		}
	}()

	// The request, and later its stream, ends with Send's ctx or the conn.
	reqCtx, cancelReq := context.WithCancelCause(ctx)
	stopLink := context.AfterFunc(c.ctx, func() { cancelReq(context.Cause(c.ctx)) })
	release := func() {
		stopLink()
		cancelReq(nil)
	}

	if msg.IsRequest() && msg.Method == "initialize" {
		c.mu.Lock()
		c.initID = msg.IDKey()
		c.mu.Unlock()
	}

	req, err := http.NewRequestWithContext(reqCtx, http.MethodPost, c.url.String(), bytes.NewReader(msg.Raw))
	if err != nil {
		release()
		return fmt.Errorf("send to upstream %q: %w", c.name, err)
	}
	setHeaders(req.Header, c.static, opts.Header)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	c.mu.Lock()
	sentSession, version := c.sessionID, c.version
	c.mu.Unlock()
	if sentSession != "" {
		req.Header.Set(headerSessionID, sentSession)
	}
	if setMCPHeaders(req.Header, msg, version) && msg.Method == "tools/call" {
		c.tools.apply(req.Header, msg.Params)
	}

	if !msg.IsRequest() {
		defer release()
		resp, err := c.client.Do(req)
		if err != nil {
			return c.requestError(reqCtx, http.MethodPost, err)
		}
		if resp.StatusCode/100 == 2 {
			c.noteSession(resp)
		}
		return c.finishAccepted(msg, resp, sentSession)
	}

	// A request's answer may take as long as the tool runs, and servers
	// need not send the response headers before the first event (the go-sdk
	// does not), so Send returns as soon as the request is written. From
	// then on the outcome goes to the Handler. Exactly one of "written"
	// (ready) and "failed before being written" (early) wins.
	const (
		notYet = iota
		written
		refused
	)
	var state atomic.Int32
	ready := make(chan struct{})
	early := make(chan error, 1)
	trace := &httptrace.ClientTrace{WroteRequest: func(info httptrace.WroteRequestInfo) {
		if info.Err == nil && state.CompareAndSwap(notYet, written) {
			close(ready)
		}
	}}
	req = req.WithContext(httptrace.WithClientTrace(reqCtx, trace))
	handedOff = true
	go func() {
		defer c.wg.Done()
		defer release()
		if msg.Method == "tools/list" {
			// Its answer, resumed streams included, comes in this goroutine.
			defer c.noteListing(msg.IDKey())()
		}
		resp, err := c.client.Do(req)
		if err != nil {
			err = c.requestError(reqCtx, http.MethodPost, err)
			if state.CompareAndSwap(notYet, refused) {
				early <- err
				return
			}
			if reqCtx.Err() != nil {
				err = c.streamError(reqCtx, err)
			} else {
				err = fmt.Errorf("%w (request written, %w)", err, ErrStreamBroken)
			}
			c.h.RequestFailed(msg.ID, err)
			return
		}
		if state.CompareAndSwap(notYet, written) {
			close(ready)
		}
		if resp.StatusCode/100 == 2 {
			c.noteSession(resp)
		}
		c.handleResponse(reqCtx, msg, resp, sentSession)
	}()
	select {
	case <-ready:
		return nil
	case err := <-early:
		return err
	}
}

// requestError describes a request that got no HTTP response.
func (c *streamableConn) requestError(ctx context.Context, method string, err error) error {
	if gone := c.Err(); gone != nil && c.ctx.Err() != nil {
		return gone
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its URL may carry secrets; safeURL below does not
	}
	if ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	return fmt.Errorf("upstream %q: %s %s: %w", c.name, method, safeURL(c.url), err)
}

// noteSession remembers the session id the server assigned.
func (c *streamableConn) noteSession(resp *http.Response) {
	id := resp.Header.Get(headerSessionID)
	if id == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.sessionID == "":
		c.sessionID = id
		c.log.Debug("upstream session started")
	case c.sessionID != id:
		c.log.Warn("upstream sent a different session id; keeping the first")
	}
}

// finishAccepted checks the answer to a notification or response.
func (c *streamableConn) finishAccepted(msg *jsonrpc.Message, resp *http.Response, sentSession string) error {
	if resp.StatusCode/100 == 2 {
		drainClose(resp.Body)
		if msg.Method == "notifications/initialized" {
			c.mu.Lock()
			c.initNotified = true
			c.mu.Unlock()
			c.maybeListen()
		}
		return nil
	}
	body := readErrorBody(resp)
	if resp.StatusCode == http.StatusNotFound && sentSession != "" {
		return c.sessionExpired()
	}
	return statusError(c.name, resp, body)
}

// sessionExpired ends the conn: a 404 for our session id means the server
// forgot the session, and the agent has to initialize a new one.
func (c *streamableConn) sessionExpired() error {
	err := fmt.Errorf("upstream %q: %w", c.name, ErrSessionExpired)
	c.mu.Lock()
	c.sessionGone = true
	c.mu.Unlock()
	c.log.Warn("upstream session expired")
	c.fail(err)
	return c.Err()
}

// handleResponse reads the answer to a request: one JSON frame, an SSE
// stream, or an error status.
func (c *streamableConn) handleResponse(ctx context.Context, msg *jsonrpc.Message, resp *http.Response, sentSession string) {
	id := msg.ID
	if resp.StatusCode/100 != 2 {
		body := readErrorBody(resp)
		// A JSON-RPC answer to our request is the server's response, even
		// under an error status (2026-07-28 maps protocol errors to 400 and
		// 404): the agent needs it as it is.
		if m := answerIn(body, id); m != nil {
			c.deliver(m, id)
			return
		}
		if resp.StatusCode == http.StatusNotFound && sentSession != "" {
			c.h.RequestFailed(id, c.sessionExpired())
			return
		}
		c.h.RequestFailed(id, statusError(c.name, resp, body))
		return
	}
	switch mediaType(resp.Header.Get("Content-Type")) {
	case "application/json":
		c.readJSON(ctx, msg, resp)
	case "text/event-stream":
		c.readStream(ctx, msg, resp)
	default:
		drainClose(resp.Body)
		c.h.RequestFailed(id, fmt.Errorf("upstream %q answered HTTP %s with content type %q: %w",
			c.name, resp.Status, resp.Header.Get("Content-Type"), ErrStreamBroken))
	}
}

func mediaType(v string) string {
	mt, _, err := mime.ParseMediaType(v)
	if err != nil {
		return ""
	}
	return mt
}

// answerIn returns the response to id carried by an error body, or nil.
func answerIn(body []byte, id []byte) *jsonrpc.Message {
	m, perr := jsonrpc.Parse(body)
	if perr != nil || !m.IsResponse() {
		return nil
	}
	if jsonrpc.IDKey(m.ID) == jsonrpc.IDKey(id) {
		return m
	}
	// An error with a null id is the server's answer to a request it could
	// not attribute (for example "Server not initialized"): it is still the
	// answer to ours, and the agent must see the server's own error.
	if m.Kind == jsonrpc.KindErrorResponse && (len(m.ID) == 0 || string(bytes.TrimSpace(m.ID)) == "null") {
		raw, err := jsonrpc.SetMember(m.Raw, "id", id)
		if err != nil {
			return nil
		}
		if out, perr := jsonrpc.Parse(raw); perr == nil {
			return out
		}
	}
	return nil
}

// readJSON handles an application/json answer: exactly one frame.
func (c *streamableConn) readJSON(ctx context.Context, msg *jsonrpc.Message, resp *http.Response) {
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(c.limit)+1))
	if err != nil {
		c.h.RequestFailed(msg.ID, c.streamError(ctx, err))
		return
	}
	if len(body) > c.limit {
		c.log.Warn("upstream frame dropped", "reason", jsonrpc.ErrFrameTooLarge.Error(), "limit", c.limit)
		c.h.RequestFailed(msg.ID, fmt.Errorf("upstream %q: response: %w: %w", c.name, jsonrpc.ErrFrameTooLarge, ErrStreamBroken))
		return
	}
	m, perr := jsonrpc.Parse(body)
	if perr != nil {
		c.log.Warn("upstream frame dropped", "reason", perr.Message, "excerpt", excerpt(body))
		c.h.RequestFailed(msg.ID, fmt.Errorf("upstream %q sent an unreadable response: %w", c.name, ErrStreamBroken))
		return
	}
	c.deliver(m, msg.ID)
	if !isResponseTo(m, msg.ID) {
		c.h.RequestFailed(msg.ID, fmt.Errorf("upstream %q: JSON answer was not the response: %w", c.name, ErrStreamBroken))
	}
}

func isResponseTo(m *jsonrpc.Message, id []byte) bool {
	return m.IsResponse() && jsonrpc.IDKey(m.ID) == jsonrpc.IDKey(id)
}

// streamError describes why reading a request's stream stopped early.
func (c *streamableConn) streamError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		cause := context.Cause(ctx)
		if c.ctx.Err() != nil {
			return cause // the conn is closing: ErrClosed or ErrSessionExpired
		}
		return fmt.Errorf("upstream %q: request abandoned: %w", c.name, cause)
	}
	return fmt.Errorf("upstream %q: %w (%v)", c.name, ErrStreamBroken, err)
}

// readStream relays a request's SSE stream until the response. If the
// stream breaks first and the server numbered its events (2025-11-25
// resumability), the stream is resumed with a GET carrying Last-Event-ID.
func (c *streamableConn) readStream(ctx context.Context, msg *jsonrpc.Message, resp *http.Response) {
	er := NewEventReader(resp.Body, c.limit)
	got, err := c.relay(er, msg.ID)
	resp.Body.Close()
	if got {
		return
	}
	lastID, retry := er.LastEventID(), er.Retry()
	for fruitless := 0; lastID != "" && ctx.Err() == nil && fruitless < resumeMaxAttempts; {
		if !sleepCtx(ctx, reconnectDelay(0, retry)) {
			break
		}
		resp, gerr := c.get(ctx, lastID)
		if gerr != nil {
			err = gerr
			fruitless++
			continue
		}
		if resp.StatusCode/100 != 2 || mediaType(resp.Header.Get("Content-Type")) != "text/event-stream" {
			body := readErrorBody(resp)
			err = fmt.Errorf("resume refused with HTTP %s: %s", resp.Status, excerpt(body))
			break
		}
		c.log.Debug("resuming upstream response stream")
		er = NewEventReader(resp.Body, c.limit)
		got, err = c.relay(er, msg.ID)
		resp.Body.Close()
		if got {
			return
		}
		if id := er.LastEventID(); id != "" && id != lastID {
			lastID, fruitless = id, 0
		} else {
			fruitless++
		}
		if r := er.Retry(); r > 0 {
			retry = r
		}
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	c.h.RequestFailed(msg.ID, c.streamError(ctx, err))
}

// relay delivers the frames of one SSE stream, tagged with related, until
// the response to related (got) or the end of the stream (err).
func (c *streamableConn) relay(er *EventReader, related []byte) (got bool, err error) {
	for {
		ev, err := er.Next()
		if errors.Is(err, jsonrpc.ErrFrameTooLarge) {
			c.log.Warn("upstream frame dropped", "reason", err.Error())
			continue
		}
		if err != nil {
			return false, err
		}
		m := c.parseEvent(ev)
		if m == nil {
			continue
		}
		c.deliver(m, related)
		if related != nil && isResponseTo(m, related) {
			return true, nil
		}
	}
}

// parseEvent returns the frame an SSE event carries, or nil for events that
// carry none (priming and close events, keep-alives) and for unreadable ones.
func (c *streamableConn) parseEvent(ev Event) *jsonrpc.Message {
	data := bytes.TrimSpace(ev.Data)
	if ev.Type != "message" || len(data) == 0 {
		return nil
	}
	m, perr := jsonrpc.Parse(data)
	if perr != nil {
		c.log.Warn("upstream frame dropped", "reason", perr.Message, "excerpt", excerpt(data))
		return nil
	}
	return m
}

// deliver hands a frame to the Handler, noting the initialize result first
// so that the agent's next message already sees the session state.
func (c *streamableConn) deliver(m *jsonrpc.Message, related []byte) {
	if related != nil && m.IsResponse() {
		c.mu.Lock()
		if c.initID != "" && c.initID == jsonrpc.IDKey(related) && jsonrpc.IDKey(m.ID) == c.initID {
			c.initID = ""
			if m.Kind == jsonrpc.KindResponse {
				c.initialized = true
				c.version = jsonrpc.StringMember(m.Result, "protocolVersion")
			}
		}
		key := jsonrpc.IDKey(m.ID)
		listed := c.listing[key] && key == jsonrpc.IDKey(related) && m.Kind == jsonrpc.KindResponse
		c.mu.Unlock()
		if listed {
			for tool, err := range c.tools.Learn(m.Result) {
				c.log.Warn("tool's x-mcp-header annotations break the 2026-07-28 rules: its arguments are not mirrored into Mcp-Param-* headers",
					"tool", tool, "err", err)
			}
		}
		c.maybeListen()
	}
	c.h.HandleUpstream(m, related)
}

// noteListing marks a tools/list request whose answer deliver learns tool
// header bindings from; the returned func forgets it once its stream is
// over, answered or not.
func (c *streamableConn) noteListing(key string) (forget func()) {
	c.mu.Lock()
	if c.listing == nil {
		c.listing = map[string]bool{}
	}
	c.listing[key] = true
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		delete(c.listing, key)
		c.mu.Unlock()
	}
}

// maybeListen opens the GET stream once the session is initialized (both
// the initialize result and notifications/initialized went through). The
// 2026-07-28 revision has no GET stream.
func (c *streamableConn) maybeListen() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil || c.listening || !c.initialized || !c.initNotified || c.version >= versionStateless {
		return
	}
	c.listening = true
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.listen()
	}()
}

// listen relays the GET stream (server-initiated messages, related=nil)
// for as long as the conn lives, reopening it with Last-Event-ID when it
// ends. A server without one answers 405.
func (c *streamableConn) listen() {
	var (
		lastID   string
		retry    time.Duration
		failures int
	)
	for c.ctx.Err() == nil {
		if failures > 0 {
			if failures > listenMaxFailures {
				c.log.Warn("upstream GET stream keeps failing; giving up on it", "attempts", failures)
				return
			}
			if !sleepCtx(c.ctx, reconnectDelay(failures, retry)) {
				return
			}
		}
		resp, err := c.get(c.ctx, lastID)
		if err != nil {
			if c.ctx.Err() == nil {
				c.log.Debug("upstream GET stream failed", "err", err)
			}
			failures++
			continue
		}
		if resp.StatusCode == http.StatusMethodNotAllowed {
			drainClose(resp.Body)
			c.log.Debug("upstream offers no GET stream")
			return
		}
		if resp.StatusCode/100 != 2 || mediaType(resp.Header.Get("Content-Type")) != "text/event-stream" {
			body := readErrorBody(resp)
			if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
				failures++
				continue
			}
			// 404 included: a server without a GET stream may say so. The
			// next POST finds out whether the session itself is gone.
			c.log.Warn("upstream refused the GET stream", "status", resp.Status, "excerpt", excerpt(body))
			return
		}
		er := NewEventReader(resp.Body, c.limit)
		delivered := false
		for {
			ev, err := er.Next()
			if errors.Is(err, jsonrpc.ErrFrameTooLarge) {
				c.log.Warn("upstream frame dropped", "reason", err.Error())
				continue
			}
			if err != nil {
				break
			}
			if m := c.parseEvent(ev); m != nil {
				c.deliver(m, nil)
				delivered = true
			}
		}
		resp.Body.Close()
		if id := er.LastEventID(); id != "" {
			lastID = id
		}
		if r := er.Retry(); r > 0 {
			retry = r
		}
		if delivered {
			failures = 0
		}
		// A stream that ends at once, again and again, counts as failing.
		failures++
		if c.ctx.Err() == nil {
			c.log.Debug("upstream GET stream ended; reopening")
		}
	}
}

// get opens an SSE stream with GET: the session's stream, or with
// lastEventID the resumption of a stream.
func (c *streamableConn) get(ctx context.Context, lastEventID string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url.String(), nil)
	if err != nil {
		return nil, err
	}
	c.sessionHeaders(req.Header)
	req.Header.Set("Accept", "text/event-stream")
	if lastEventID != "" {
		req.Header.Set(headerLastEventID, lastEventID)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its URL may carry secrets
		}
		return nil, fmt.Errorf("GET %s: %w", safeURL(c.url), err)
	}
	return resp, nil
}

// sessionHeaders sets the static headers, the session id and the
// negotiated protocol version.
func (c *streamableConn) sessionHeaders(h http.Header) {
	setHeaders(h, c.static, nil)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sessionID != "" {
		h.Set(headerSessionID, c.sessionID)
	}
	if c.version != "" {
		h.Set(headerProtocolVersion, c.version)
	}
}

// reconnectDelay is the wait before reopening a stream: the server's retry
// value if it gave one, else exponential from reconnectBaseDelay; capped.
func reconnectDelay(failures int, retry time.Duration) time.Duration {
	d := retry
	if d <= 0 {
		d = reconnectBaseDelay
		for i := 1; i < failures && d < reconnectMaxDelay; i++ {
			d *= 2
		}
	}
	return min(d, reconnectMaxDelay)
}

// sleepCtx waits d, reporting false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Close cancels every request stream and the GET stream, ends the session
// with DELETE (a 405 means the server does not support that), and waits
// until ConnClosed returned or ctx ends.
func (c *streamableConn) Close(ctx context.Context) error {
	c.closeOnce.Do(func() {
		c.fail(fmt.Errorf("upstream %q: %w", c.name, ErrClosed))
		c.mu.Lock()
		session := c.sessionID != "" && !c.sessionGone
		c.mu.Unlock()
		if session {
			c.deleteSession(ctx)
		}
	})
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close upstream %q: %w", c.name, ctx.Err())
	}
}

func (c *streamableConn) deleteSession(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, deleteTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.url.String(), nil)
	if err != nil {
		return
	}
	c.sessionHeaders(req.Header)
	resp, err := c.client.Do(req)
	if err != nil {
		c.log.Debug("upstream session DELETE failed", "err", err)
		return
	}
	drainClose(resp.Body)
	if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusMethodNotAllowed {
		c.log.Debug("upstream session DELETE refused", "status", resp.Status)
	}
}

func (c *streamableConn) Done() <-chan struct{} { return c.done }

func (c *streamableConn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
