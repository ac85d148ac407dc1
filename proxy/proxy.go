package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/agenthelm/agenthelm/proxy/upstream"
	"github.com/agenthelm/agenthelm/toolcall"
)

// Options configure a Proxy. The zero value of each field is usable.
type Options struct {
	// Upstreams maps each configured upstream name to how it is reached.
	Upstreams map[string]upstream.Spec
	// Interceptor sees every tools/call. Nil means toolcall.Passthrough.
	Interceptor toolcall.Interceptor
	// Logger receives the proxy's logs. Nil discards them.
	Logger *slog.Logger
	// MaxBodyBytes bounds an HTTP request body and a stdio frame.
	// Zero means 4 MiB.
	MaxBodyBytes int64
	// CallTimeout is how long a forwarded tools/call may go without any
	// frame from the upstream (progress restarts it). Zero means no limit:
	// the agent's own timeout and cancellation apply.
	CallTimeout time.Duration
	// SessionIdleTimeout ends an HTTP session with no requests in flight and
	// no traffic for this long. Zero means 30 minutes.
	SessionIdleTimeout time.Duration
	// AllowedHosts are extra Host and Origin host names accepted by the HTTP
	// doors besides the loopback names (DNS rebinding protection).
	AllowedHosts []string
	// CallHeaders names extra request headers copied into each call's
	// Transport.Headers (for example the agent identity header). The saga
	// header X-AgentHelm-Saga and trace context are always copied.
	CallHeaders []string
	// ExtraTools are tool definitions (a JSON array) appended to every
	// tools/list answer of every upstream: agenthelm's own control tools.
	// The interceptor must answer calls to them. Nil adds nothing.
	ExtraTools json.RawMessage
	// VerifyToken, if set, verifies the bearer token in an Authorization
	// header value and returns the agent's identity ("" and no error when
	// the value is empty). A request whose token does not verify is
	// refused with 401 before anything is relayed; a verified subject
	// becomes each call's TokenSubject. Nil: tokens are ignored (and, like
	// any credential, never relayed upstream).
	VerifyToken func(authorization string) (string, error)
	// OnSessionEnd, if set, is called after an agent session ended (DELETE,
	// its stdio process exiting, idleness, its upstream dying), so the saga
	// engine can commit a session-scoped saga.
	OnSessionEnd func(ctx context.Context, sessionID string)
}

// closeWait bounds how long closing a session waits for its interceptors
// once their calls were cancelled.
const closeWait = 5 * time.Second

// Proxy relays MCP traffic between agents and upstream servers.
type Proxy struct {
	opts        Options
	log         *slog.Logger
	interceptor toolcall.Interceptor

	mu        sync.Mutex
	sessions  map[string]*Session      // agent-facing session id -> session
	shared    map[string]*Session      // upstream name -> stateless session
	operators map[string]*Session      // upstream name -> agenthelm's own session
	launched  map[string]upstream.Spec // upstreams known only from the journal
	// toolHeaders are each upstream's Mcp-Param-* bindings, learned from
	// the tools/list answers of all its sessions. Own lock: sessions dial
	// with mu held.
	thMu        sync.Mutex
	toolHeaders map[string]*upstream.ToolHeaders
	closed      bool
	opMu        sync.Mutex // serializes opening operator sessions

	stop   context.CancelFunc
	reaper sync.WaitGroup

	// streamsDone is closed by CloseStreams: long-lived agent streams (GET,
	// legacy SSE) end, so that an HTTP server's Shutdown can complete.
	streamsDone chan struct{}
	streamsOnce sync.Once
}

// CloseStreams ends the long-lived streams of every session (the GET
// streams of streamable HTTP and legacy SSE streams). Call it when shutting
// down, before http.Server.Shutdown, which otherwise waits for them.
func (p *Proxy) CloseStreams() {
	p.streamsOnce.Do(func() { close(p.streamsDone) })
}

// New returns a proxy. Call Close to end its sessions.
func New(opts Options) *Proxy {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 4 << 20
	}
	if opts.SessionIdleTimeout <= 0 {
		opts.SessionIdleTimeout = 30 * time.Minute
	}
	ic := opts.Interceptor
	if ic == nil {
		ic = toolcall.Passthrough{}
	}
	ctx, stop := context.WithCancel(context.Background())
	p := &Proxy{
		opts: opts, log: opts.Logger, interceptor: ic,
		sessions: map[string]*Session{}, shared: map[string]*Session{}, operators: map[string]*Session{}, launched: map[string]upstream.Spec{},
		toolHeaders: map[string]*upstream.ToolHeaders{},
		stop:        stop, streamsDone: make(chan struct{}),
	}
	p.reaper.Add(1)
	go p.reapIdle(ctx)
	return p
}

// UpstreamNames returns the configured upstream names, sorted.
func (p *Proxy) UpstreamNames() []string {
	names := make([]string, 0, len(p.opts.Upstreams))
	for n := range p.opts.Upstreams {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (p *Proxy) unknownUpstream(name string) error {
	names := p.UpstreamNames()
	if len(names) == 0 {
		return fmt.Errorf("%w %q: no upstreams are configured", toolcall.ErrUnknownUpstream, name)
	}
	return fmt.Errorf("%w %q: configured upstreams are %s", toolcall.ErrUnknownUpstream, name, strings.Join(names, ", "))
}

// spec returns how to reach an upstream: from the configuration, else from
// what recovery registered with InvokeLaunch.
func (p *Proxy) spec(name string) (upstream.Spec, bool) {
	if s, ok := p.opts.Upstreams[name]; ok {
		return s, true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.launched[name]
	return s, ok
}

// toolHeadersOf returns the Mcp-Param-* bindings shared by the sessions
// of an upstream.
func (p *Proxy) toolHeadersOf(name string) *upstream.ToolHeaders {
	p.thMu.Lock()
	defer p.thMu.Unlock()
	th := p.toolHeaders[name]
	if th == nil {
		th = upstream.NewToolHeaders()
		p.toolHeaders[name] = th
	}
	return th
}

// learnedToolHeaders returns the Mcp-Param-* bindings of an upstream that
// has had a session, or nil (it creates nothing: the name may be an
// agent's).
func (p *Proxy) learnedToolHeaders(name string) *upstream.ToolHeaders {
	p.thMu.Lock()
	defer p.thMu.Unlock()
	return p.toolHeaders[name]
}

// openSession dials a new session's upstream and registers it.
func (p *Proxy) openSession(ctx context.Context, upstreamName, door string) (*Session, error) {
	if _, ok := p.opts.Upstreams[upstreamName]; !ok {
		return nil, p.unknownUpstream(upstreamName)
	}
	s := newSession(p, newID(), upstreamName, door, false)
	if err := s.dial(ctx); err != nil {
		return nil, err
	}
	s.onClose = p.forget
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = s.Close(ctx)
		return nil, errProxyClosed
	}
	p.sessions[s.id] = s
	p.mu.Unlock()
	s.log.Info("session opened")
	return s, nil
}

// sharedSession returns the stateless session of an upstream, dialing it
// on first use or after its connection died.
func (p *Proxy) sharedSession(ctx context.Context, upstreamName string) (*Session, error) {
	if _, ok := p.opts.Upstreams[upstreamName]; !ok {
		return nil, p.unknownUpstream(upstreamName)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errProxyClosed
	}
	if s := p.shared[upstreamName]; s != nil {
		return s, nil
	}
	s := newSession(p, "shared-"+upstreamName, upstreamName, "streamable-http", true)
	if err := s.dial(ctx); err != nil {
		return nil, err
	}
	s.onClose = p.forget
	p.shared[upstreamName] = s
	return s, nil
}

// session looks up an agent-facing session.
func (p *Proxy) session(id string) *Session {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sessions[id]
}

// forget unregisters a session whose upstream is gone and closes its
// connection in the background.
func (p *Proxy) forget(s *Session) {
	p.mu.Lock()
	if p.sessions[s.id] == s {
		delete(p.sessions, s.id)
	}
	if p.shared[s.upstream] == s {
		delete(p.shared, s.upstream)
	}
	if p.operators[s.upstream] == s {
		delete(p.operators, s.upstream)
	}
	p.mu.Unlock()
}

// closeSession ends one session and waits for it.
func (p *Proxy) closeSession(ctx context.Context, s *Session) error {
	p.forget(s)
	err := s.Close(ctx)
	s.log.Info("session closed")
	if p.opts.OnSessionEnd != nil && !s.shared && s.door != "operator" {
		p.opts.OnSessionEnd(ctx, s.id)
	}
	return err
}

// reapIdle ends HTTP sessions nobody uses, so abandoned agents do not
// leave upstream processes behind.
func (p *Proxy) reapIdle(ctx context.Context) {
	defer p.reaper.Done()
	tick := time.NewTicker(p.opts.SessionIdleTimeout / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		p.mu.Lock()
		var idle []*Session
		for _, s := range p.sessions {
			if s.door == "stdio" {
				continue
			}
			last, open := s.idleSince()
			if open == 0 && time.Since(last) > p.opts.SessionIdleTimeout {
				idle = append(idle, s)
			}
		}
		p.mu.Unlock()
		for _, s := range idle {
			s.log.Info("closing idle session")
			_ = p.closeSession(ctx, s)
		}
	}
}

// Close ends every session: it waits for open requests to finish until
// ctx's deadline, then closes the upstream connections (ending stdio
// children). It is idempotent.
func (p *Proxy) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	all := make([]*Session, 0, len(p.sessions)+len(p.shared))
	for _, s := range p.sessions {
		all = append(all, s)
	}
	for _, s := range p.shared {
		all = append(all, s)
	}
	for _, s := range p.operators {
		all = append(all, s)
	}
	p.mu.Unlock()
	p.stop()
	p.reaper.Wait()
	var wg sync.WaitGroup
	for _, s := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.drain(ctx)
			// Open calls had until ctx's deadline (drain); whatever still
			// waits (a call held for approval) is cancelled now.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeWait)
			_ = p.closeSession(cctx, s)
			cancel()
		}()
	}
	wg.Wait()
	return nil
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
