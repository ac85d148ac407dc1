package httptool

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/agenthelm/agenthelm/proxy/hostcheck"
)

// newServer returns the agent-facing server. fasthttp never tells a
// handler that its client went away: a routed call watches its connection
// itself until it is forwarded (see watchHangup). The timeouts bound
// reading requests, writing answers and idle connections.
func (p *Proxy) newServer() *fasthttp.Server {
	return &fasthttp.Server{
		Handler:      p.handle,
		ErrorHandler: p.requestError,
		Logger:       logAdapter{p.log},
		ReadTimeout:  60 * time.Second,
		WriteTimeout: 60 * time.Second,
		IdleTimeout:  2 * time.Minute,
		// A body above the limit is refused (413) before the handler runs.
		MaxRequestBodySize:           int(p.opts.MaxBodyBytes),
		ReadBufferSize:               16 << 10,
		WriteBufferSize:              16 << 10,
		DisablePreParseMultipartForm: true,
		// The upstream's Server, Date and Content-Type are relayed as they
		// are; agenthelm's own answers set theirs.
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
		NoDefaultContentType:  true,
		SecureErrorLogMessage: true,
	}
}

// logAdapter sends fasthttp's log lines (connection errors) to slog at
// debug level.
type logAdapter struct{ log *slog.Logger }

func (l logAdapter) Printf(format string, args ...any) {
	l.log.Debug("http tool proxy: " + fmt.Sprintf(format, args...))
}

// requestError answers a request fasthttp could not read.
func (p *Proxy) requestError(rc *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		p.problem(rc, problem{Status: http.StatusRequestEntityTooLarge, Code: codeBodyTooLarge,
			Detail: fmt.Sprintf("the request body is larger than limits.max_body_bytes (%d bytes)", p.opts.MaxBodyBytes)})
	case errors.As(err, &small):
		p.problem(rc, problem{Status: http.StatusRequestHeaderFieldsTooLarge, Code: codeBadRequest,
			Detail: "the request's headers are too large"})
	default:
		p.problem(rc, problem{Status: http.StatusBadRequest, Code: codeBadRequest, Detail: "the request could not be read: " + err.Error()})
	}
}

// request is an agent's request, addressed to an upstream.
type request struct {
	up     *target
	method string
	// path is the request path after /<upstream>, as the agent sent it,
	// starting with "/"; query is the raw query, without "?".
	path, query string
	route       *Route
	params      map[string]string
	// subject is the agent's identity from its verified bearer token.
	subject string
}

// handle answers one agent request: unknown upstreams get 404, routed
// requests become tool calls, unrouted reads are forwarded and unrouted
// writes refused.
func (p *Proxy) handle(rc *fasthttp.RequestCtx) {
	if !p.enter() {
		rc.SetConnectionClose()
		p.problem(rc, problem{Status: http.StatusServiceUnavailable, Code: codeShuttingDown, Detail: "agenthelm is shutting down"})
		return
	}
	defer p.inflight.Done()
	subject, ok := p.guard(rc)
	if !ok {
		return
	}

	// The request target exactly as received: fasthttp's URI would
	// normalize the path (/a/../b, %2F), and then policy and the upstream
	// could see different paths.
	target := rc.Request.Header.RequestURI()
	if len(target) == 0 || target[0] != '/' {
		p.problem(rc, problem{Status: http.StatusBadRequest, Code: codeBadRequest,
			Detail: "the request target must be a path, /<upstream>/<path>"})
		return
	}
	rawPath, rawQuery, _ := bytes.Cut(target, []byte("?"))
	name, rest, _ := strings.Cut(string(rawPath[1:]), "/")
	t, ok := p.target(name)
	if !ok || t.recorded {
		p.problem(rc, problem{Status: http.StatusNotFound, Code: codeUnknownUpstream, Upstreams: p.names,
			Detail: fmt.Sprintf("no REST upstream named %q: send requests to /<upstream>/<path>, where upstream is one of the configured names", name)})
		return
	}
	rq := &request{up: t, method: string(rc.Method()), path: "/" + rest, query: string(rawQuery), subject: subject}
	rq.route, rq.params = p.router.match(name, rq.method, rq.path)
	switch {
	case rq.route != nil:
		p.toolCall(rc, rq)
	case rq.method == http.MethodGet || rq.method == http.MethodHead || rq.method == http.MethodOptions:
		p.passThrough(rc, rq)
	default:
		p.problem(rc, problem{Status: http.StatusForbidden, Code: codeNotAToolCall, Upstream: name,
			Detail: fmt.Sprintf("%s %s is not a tool call: no route declares it, and agenthelm forwards only GET, HEAD and OPTIONS requests that no route declares. "+
				"To allow it, add a route to agenthelm.yaml: routes: [{upstream: %s, method: %s, path: %s, tool: <name>}] (with a compensate block if it can be undone); "+
				"it is then checked by policy and journaled like any tool call.", rq.method, rq.path, name, rq.method, rq.path)})
	}
}

// guard refuses requests whose Host or Origin is not a name this proxy
// answers to, and requests whose bearer token does not verify; it returns
// the verified subject.
func (p *Proxy) guard(rc *fasthttp.RequestCtx) (subject string, ok bool) {
	if host := string(rc.Host()); !p.hostAllowed(host) {
		p.problem(rc, problem{Status: http.StatusForbidden, Code: codeHostNotAllowed,
			Detail: fmt.Sprintf("host %q is not allowed (DNS rebinding protection)", host)})
		return "", false
	}
	if o := rc.Request.Header.Peek("Origin"); len(o) > 0 {
		if u, err := url.Parse(string(o)); err != nil || !p.hostAllowed(u.Host) {
			p.problem(rc, problem{Status: http.StatusForbidden, Code: codeHostNotAllowed,
				Detail: fmt.Sprintf("origin %q is not allowed (DNS rebinding protection)", o)})
			return "", false
		}
	}
	if v := p.opts.VerifyToken; v != nil {
		sub, err := v(string(rc.Request.Header.Peek("Authorization")))
		if err != nil {
			p.log.Warn("request refused: bearer token not accepted", "remote", rc.RemoteAddr().String(), "err", err)
			p.problem(rc, problem{Status: http.StatusUnauthorized, Code: codeInvalidToken, Detail: err.Error()})
			rc.Response.Header.Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			return "", false
		}
		return sub, true
	}
	return "", true
}

// hostAllowed: see hostcheck.Allowed.
func (p *Proxy) hostAllowed(hostport string) bool {
	return hostcheck.Allowed(hostport, p.opts.AllowedHosts)
}

// passThrough forwards an unrouted read unchanged (credentials and
// hop-by-hop headers aside) and relays the answer. It is not a tool call:
// not journaled, not seen by policy. The answer's body is streamed to the
// agent as it arrives rather than buffered: a download or an event stream
// need not fit in memory or under limits.max_body_bytes, though it must
// end within limits.call_timeout.
func (p *Proxy) passThrough(rc *fasthttp.RequestCtx, rq *request) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	p.prepare(req, rq, &rc.Request, nil)
	req.SetBody(rc.Request.Body())
	resp.StreamBody = !rc.IsHead()
	owned, err := p.roundTrip(p.ctx, rq.up, req, resp)
	if owned {
		fasthttp.ReleaseRequest(req)
	}
	if err != nil {
		if owned {
			fasthttp.ReleaseResponse(resp)
		}
		p.log.Debug("unrouted request failed", "upstream", rq.up.name, "method", rq.method, "err", err)
		p.problem(rc, forwardProblem(err, rq.up.name, ""))
		return
	}
	body := resp.BodyStream()
	if body == nil {
		p.relay(rc, resp)
		fasthttp.ReleaseResponse(resp)
		return
	}
	p.relayHeader(rc, resp)
	size := resp.Header.ContentLength()
	if size < 0 {
		size = -1 // chunked, or until the upstream closes: sent chunked
	}
	// fasthttp closes the stream once it is written (or the agent has
	// gone); closing returns the upstream connection and the response.
	rc.Response.SetBodyStream(&streamedBody{Reader: body, resp: resp}, size)
}

// streamedBody is an upstream response's body on its way to the agent.
type streamedBody struct {
	io.Reader
	resp *fasthttp.Response
	once sync.Once
}

func (b *streamedBody) Close() error {
	var err error
	b.once.Do(func() {
		err = b.resp.CloseBodyStream()
		fasthttp.ReleaseResponse(b.resp)
	})
	return err
}

// relay copies the upstream's response to the agent: status, headers
// (hop-by-hop ones aside) and the body byte for byte.
func (p *Proxy) relay(rc *fasthttp.RequestCtx, resp *fasthttp.Response) {
	p.relayHeader(rc, resp)
	if rc.IsHead() {
		rc.Response.SkipBody = true
		if n := resp.Header.ContentLength(); n >= 0 {
			rc.Response.Header.SetContentLength(n)
		}
		return
	}
	rc.Response.SetBody(resp.Body())
}

// relayHeader copies the upstream response's status and headers (hop-by-hop
// ones aside) to the agent's response.
func (p *Proxy) relayHeader(rc *fasthttp.RequestCtx, resp *fasthttp.Response) {
	p.closing(rc)
	rc.Response.SetStatusCode(resp.StatusCode())
	copyResponseHeaders(&rc.Response.Header, &resp.Header)
}

// closing asks the agent to close its connection once the proxy is
// shutting down, so that no keep-alive connection outlives it.
func (p *Proxy) closing(rc *fasthttp.RequestCtx) {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		rc.SetConnectionClose()
	}
}
