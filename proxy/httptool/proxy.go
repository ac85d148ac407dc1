package httptool

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/agenthelm/agenthelm/toolcall"
)

// Upstream is a REST API the proxy reaches.
type Upstream struct {
	// URL is the API's base URL (upstreams.<name>.http). A request to
	// /<name>/<path> goes to URL's path joined with /<path>.
	URL string
	// Headers are sent with every request to the API, over any the agent
	// sent: the API's credentials, with ${VAR} already resolved.
	Headers map[string]string
}

// Options configure a Proxy.
type Options struct {
	// Upstreams are the REST APIs by name.
	Upstreams map[string]Upstream
	// Routes say which requests are tool calls.
	Routes []Route
	// Interceptor sees every routed call (nil: toolcall.Passthrough).
	Interceptor toolcall.Interceptor
	// Logger gets the proxy's log lines (nil: discarded).
	Logger *slog.Logger
	// MaxBodyBytes bounds request and response bodies (zero: 4 MiB).
	MaxBodyBytes int64
	// CallTimeout is how long a request may wait for the upstream's answer
	// (zero: 60 s).
	CallTimeout time.Duration
	// AgentHeader names the request header that identifies the agent
	// (saga.agent_header); it is passed to the interceptor and journaled.
	// Empty: none.
	AgentHeader string
	// AllowedHosts are host names, besides loopback ones, accepted in a
	// request's Host and Origin headers ("*": any). Others are refused
	// (DNS rebinding protection: a web page must not reach the APIs with
	// the credentials agenthelm adds). Empty: loopback only.
	AllowedHosts []string
	// VerifyToken, if set, verifies the bearer token in an Authorization
	// header value and returns the agent's identity ("" and no error when
	// the value is empty). A request whose token does not verify is refused
	// with 401 before anything is forwarded; a verified subject becomes the
	// call's TokenSubject. Nil: tokens are ignored (and, like any
	// credential, never forwarded).
	VerifyToken func(authorization string) (string, error)
}

// Proxy is the HTTP tool proxy. It is safe for concurrent use.
type Proxy struct {
	opts   Options
	log    *slog.Logger
	ic     toolcall.Interceptor
	router *router
	srv    *fasthttp.Server
	ctx    context.Context // cancelled when Close gives up waiting for calls
	cancel context.CancelFunc

	// Selected request headers, by canonical name: those the interceptor
	// sees in Transport.Headers, and those journaled in the arguments.
	transportHeaders, argHeaders []string

	mu       sync.Mutex
	ups      map[string]*target // configured, and reached as the journal recorded
	names    []string           // configured names, sorted
	closed   bool
	ln       net.Listener   // Serve's
	inflight sync.WaitGroup // handlers, Invoke calls and the round trips they started
}

// target is one upstream with its connection pool.
type target struct {
	name     string
	scheme   string
	host     string // host[:port], the Host header
	path     string // base path, escaped, without a trailing "/"
	query    string // base query, without "?"
	headers  map[string]string
	client   *fasthttp.HostClient
	recorded bool // reached as the journal recorded, not configured
}

// New returns a proxy for opts. It does no I/O until Serve or Invoke.
func New(opts Options) (*Proxy, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 4 << 20
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 60 * time.Second
	}
	ic := opts.Interceptor
	if ic == nil {
		ic = toolcall.Passthrough{}
	}
	rt, err := newRouter(opts.Routes)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{opts: opts, log: opts.Logger, ic: ic, router: rt, ctx: ctx, cancel: cancel, ups: map[string]*target{}}
	for _, name := range slices.Sorted(maps.Keys(opts.Upstreams)) {
		t, err := p.newTarget(name, opts.Upstreams[name])
		if err != nil {
			cancel()
			return nil, err
		}
		p.ups[name] = t
		p.names = append(p.names, name)
	}
	for i, r := range opts.Routes {
		if p.ups[r.Upstream] == nil {
			cancel()
			return nil, fmt.Errorf("routes[%d]: no REST upstream named %q", i, r.Upstream)
		}
	}
	p.transportHeaders = []string{hdrSaga, hdrTraceparent, hdrTracestate, hdrContentType}
	p.argHeaders = []string{hdrContentType, "Accept", hdrIdempotencyKey}
	if h := opts.AgentHeader; h != "" {
		p.transportHeaders = append(p.transportHeaders, http.CanonicalHeaderKey(h))
		p.argHeaders = append(p.argHeaders, http.CanonicalHeaderKey(h))
	}
	p.srv = p.newServer()
	return p, nil
}

// newTarget parses an upstream's base URL and builds its client.
func (p *Proxy) newTarget(name string, u Upstream) (*target, error) {
	base, err := url.Parse(u.URL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("upstream %s: %q is not an http(s) base URL", name, u.URL)
	}
	t := &target{
		name: name, scheme: base.Scheme, host: base.Host,
		path: strings.TrimSuffix(base.EscapedPath(), "/"), query: base.RawQuery,
		headers: u.Headers,
	}
	addr := base.Host
	if base.Port() == "" {
		addr = net.JoinHostPort(base.Hostname(), map[string]string{"http": "80", "https": "443"}[base.Scheme])
	}
	t.client = p.newClient(addr, base.Scheme == "https", base.Hostname())
	return t, nil
}

// newClient returns the connection pool for one upstream address.
//
// It never re-sends a request by itself (fasthttp would retry GET, HEAD
// and PUT): a tool call is forwarded at most once unless the engine
// retries it (rule 16). It sends paths exactly as given. It dials, and
// for https completes the TLS handshake, in its Dial function, so that a
// failure there is known to have sent nothing (toolcall.ErrNotSent).
func (p *Proxy) newClient(addr string, isTLS bool, serverName string) *fasthttp.HostClient {
	dialer := &net.Dialer{Timeout: p.opts.CallTimeout, KeepAlive: 30 * time.Second}
	dial := func(addr string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), p.opts.CallTimeout)
		defer cancel()
		c, err := dialer.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, notSentError{err}
		}
		if !isTLS {
			return c, nil
		}
		tc := tls.Client(c, &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = c.Close()
			return nil, notSentError{err}
		}
		return tc, nil
	}
	return &fasthttp.HostClient{
		Addr:                      addr,
		IsTLS:                     isTLS,
		Dial:                      dial,
		MaxIdemponentCallAttempts: 1,
		RetryIfErr:                func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		DisablePathNormalizing:    true,
		NoDefaultUserAgentHeader:  true,
		MaxResponseBodySize:       int(p.opts.MaxBodyBytes),
		ReadBufferSize:            16 << 10,
		WriteBufferSize:           16 << 10,
		MaxConnWaitTimeout:        p.opts.CallTimeout,
		// Below the 5 s keep-alive timeout of common servers (Node.js), so
		// that a pooled connection is rarely one the server is closing:
		// a request lost that way would be in doubt.
		MaxIdleConnDuration:   4 * time.Second,
		SecureErrorLogMessage: true,
	}
}

// notSentError marks a failure before any byte of the request was
// written: dialing, or the TLS handshake.
type notSentError struct{ err error }

func (e notSentError) Error() string { return e.err.Error() }
func (e notSentError) Unwrap() error { return e.err }

// Has reports whether name is an upstream of this proxy (configured, or
// reached as the journal recorded it).
func (p *Proxy) Has(name string) bool {
	_, ok := p.target(name)
	return ok
}

// UpstreamNames returns the configured upstream names, sorted.
func (p *Proxy) UpstreamNames() []string { return slices.Clone(p.names) }

func (p *Proxy) target(name string) (*target, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.ups[name]
	return t, ok
}

// Serve answers agents on ln until Close. It returns nil after Close.
func (p *Proxy) Serve(ln net.Listener) error {
	p.mu.Lock()
	closed := p.closed
	p.ln = ln
	p.mu.Unlock()
	if closed {
		_ = ln.Close()
		return nil
	}
	return p.srv.Serve(ln)
}

// closeWait bounds the wait, after ctx is done, for calls that Close
// cancelled to return.
const closeWait = 5 * time.Second

// Close stops accepting requests and waits until ctx is done for calls in
// flight (and Invoke calls) to finish; then it cancels those still running
// (their steps are in doubt, or their approvals withdrawn) and waits
// briefly for them to return. Invoke fails once Close has begun. It is
// safe to call more than once.
func (p *Proxy) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	ln := p.ln
	p.mu.Unlock()
	// Its error is ctx's when connections are still busy: the wait below
	// says what matters.
	_ = p.srv.ShutdownWithContext(ctx)
	if ln != nil {
		// Serve may not have handed ln to the server yet, which then
		// would not know to close it.
		_ = ln.Close()
	}
	done := make(chan struct{})
	go func() { p.inflight.Wait(); close(done) }()
	select {
	case <-done:
		p.cancel()
		return nil
	case <-ctx.Done():
	}
	p.cancel()
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		return errors.New("http tool proxy: calls still running after shutdown")
	}
}

// enter counts a handler or Invoke call that Close waits for; it reports
// false once the proxy is closed. The caller calls p.inflight.Done.
func (p *Proxy) enter() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.inflight.Add(1)
	return true
}
