package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"

	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
)

// sseConn is a client of the legacy HTTP+SSE transport (2024-11-05): one
// long GET whose SSE stream carries every server message, and a POST per
// client message to the endpoint the stream announced first.
type sseConn struct {
	name     string
	static   map[string]string
	client   *http.Client
	h        Handler
	log      *slog.Logger
	limit    int
	endpoint *url.URL
	pending  pending

	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	err       error
	closeOnce sync.Once
	done      chan struct{}
}

var _ Conn = (*sseConn)(nil)

// dialSSE opens the stream and waits, within ctx, for the endpoint event.
func dialSSE(ctx context.Context, spec Spec, u *url.URL, h Handler, log *slog.Logger) (Conn, error) {
	life, cancel := context.WithCancelCause(context.Background())
	c := &sseConn{
		name:   spec.Name,
		static: spec.Headers,
		client: newHTTPClient(spec.HTTPClient),
		h:      h,
		log:    log,
		limit:  spec.MaxFrameBytes,
		ctx:    life,
		cancel: cancel,
		done:   make(chan struct{}),
	}
	// Dial's ctx bounds only the start: the stream itself lives with life.
	unlink := context.AfterFunc(ctx, func() { cancel(context.Cause(ctx)) })
	abort := func(err error) (Conn, error) {
		unlink()
		cancel(err)
		return nil, fmt.Errorf("dial upstream %q (%s): %w", spec.Name, safeURL(u), err)
	}

	req, err := http.NewRequestWithContext(life, http.MethodGet, u.String(), nil)
	if err != nil {
		return abort(err)
	}
	setHeaders(req.Header, c.static, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return abort(err)
	}
	if resp.StatusCode/100 != 2 || mediaType(resp.Header.Get("Content-Type")) != "text/event-stream" {
		body := readErrorBody(resp)
		return abort(statusError(spec.Name, resp, body))
	}
	er := NewEventReader(resp.Body, c.limit)
	for c.endpoint == nil {
		ev, err := er.Next()
		if errors.Is(err, jsonrpc.ErrFrameTooLarge) {
			continue
		}
		if err != nil {
			resp.Body.Close()
			if ctx.Err() != nil {
				err = context.Cause(ctx)
			}
			return abort(fmt.Errorf("stream ended before the endpoint event: %w", err))
		}
		if ev.Type != "endpoint" {
			c.log.Warn("upstream event before the endpoint event dropped", "event", ev.Type)
			continue
		}
		// Relative to the stream's own URL (after same-origin redirects).
		ep, err := resp.Request.URL.Parse(string(bytes.TrimSpace(ev.Data)))
		if err != nil {
			resp.Body.Close()
			return abort(fmt.Errorf("bad endpoint event %q: %w", excerpt(ev.Data), err))
		}
		if !sameOrigin(ep, u) {
			// Our static headers (API keys) and every message would go there.
			resp.Body.Close()
			return abort(fmt.Errorf("endpoint on another origin (%s) refused", origin(ep)))
		}
		c.endpoint = ep
	}
	if !unlink() {
		resp.Body.Close()
		return abort(fmt.Errorf("waiting for the endpoint event: %w", context.Cause(ctx)))
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.read(resp, er)
	}()
	go c.supervise()
	return c, nil
}

// read relays every message on the stream (related=nil); the end of the
// stream ends the conn.
func (c *sseConn) read(resp *http.Response, er *EventReader) {
	defer resp.Body.Close()
	for {
		ev, err := er.Next()
		if errors.Is(err, jsonrpc.ErrFrameTooLarge) {
			c.log.Warn("upstream frame dropped", "reason", err.Error())
			continue
		}
		if err != nil {
			if c.ctx.Err() == nil {
				c.log.Warn("upstream stream ended", "err", err)
				c.fail(fmt.Errorf("upstream %q: %w (%v)", c.name, ErrDisconnected, err))
			}
			return
		}
		data := bytes.TrimSpace(ev.Data)
		if ev.Type != "message" || len(data) == 0 {
			if ev.Type != "message" {
				c.log.Debug("upstream event ignored", "event", ev.Type)
			}
			continue
		}
		m, perr := jsonrpc.Parse(data)
		if perr != nil {
			c.log.Warn("upstream frame dropped", "reason", perr.Message, "excerpt", excerpt(data))
			continue
		}
		if m.IsResponse() {
			c.pending.remove(m.ID)
		}
		c.h.HandleUpstream(m, nil)
	}
}

// supervise fails the requests still waiting and reports ConnClosed once
// the conn is cancelled and its goroutines are done.
func (c *sseConn) supervise() {
	defer close(c.done)
	<-c.ctx.Done()
	c.wg.Wait()
	err := c.Err()
	for _, id := range c.pending.drain() {
		c.h.RequestFailed(id, err)
	}
	c.h.ConnClosed(err)
}

func (c *sseConn) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	err = c.err
	c.mu.Unlock()
	c.cancel(err)
}

// Send POSTs one frame to the endpoint. The answer comes on the stream; a
// non-2xx status fails a request through RequestFailed and is returned for
// a notification or response.
func (c *sseConn) Send(ctx context.Context, msg *jsonrpc.Message, opts SendOptions) error {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return c.err
	}
	c.wg.Add(1)
	c.mu.Unlock()
	handedOff := false
	defer func() {
		if !handedOff {
			c.wg.Done()
		}
	}()

	reqCtx, cancelReq := context.WithCancelCause(ctx)
	defer cancelReq(nil)
	stop := context.AfterFunc(c.ctx, func() { cancelReq(context.Cause(c.ctx)) })
	defer stop()

	req, err := http.NewRequestWithContext(reqCtx, http.MethodPost, c.endpoint.String(), bytes.NewReader(msg.Raw))
	if err != nil {
		return fmt.Errorf("send to upstream %q: %w", c.name, err)
	}
	setHeaders(req.Header, c.static, opts.Header)
	req.Header.Set("Content-Type", "application/json")
	if msg.IsRequest() && !c.pending.add(msg.ID) {
		return c.Err()
	}
	resp, err := c.client.Do(req)
	if err != nil {
		if msg.IsRequest() && !c.pending.remove(msg.ID) {
			return nil // the conn went away meanwhile and failed it already
		}
		if c.ctx.Err() != nil {
			return c.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the endpoint URL carries the session id
		}
		if reqCtx.Err() != nil {
			err = context.Cause(reqCtx)
		}
		return fmt.Errorf("send to upstream %q: POST: %w", c.name, err)
	}
	if resp.StatusCode/100 == 2 {
		drainClose(resp.Body)
		return nil
	}
	serr := statusError(c.name, resp, readErrorBody(resp))
	if !msg.IsRequest() {
		return serr
	}
	if !c.pending.remove(msg.ID) {
		return nil // answered or failed already
	}
	// The Handler is never called from inside Send: the caller may hold
	// locks the Handler needs.
	handedOff = true
	go func() {
		defer c.wg.Done()
		c.h.RequestFailed(msg.ID, serr)
	}()
	return nil
}

// Close ends the stream and waits until ConnClosed returned or ctx ends.
func (c *sseConn) Close(ctx context.Context) error {
	c.closeOnce.Do(func() {
		c.fail(fmt.Errorf("upstream %q: %w", c.name, ErrClosed))
	})
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close upstream %q: %w", c.name, ctx.Err())
	}
}

func (c *sseConn) Done() <-chan struct{} { return c.done }

func (c *sseConn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
