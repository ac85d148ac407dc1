//lint:file-ignore SA1019 the suite exercises sampling, logging and roots on purpose: clients still use them during their deprecation window

package conformance

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/internal/testservers"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Client eras: the go-sdk client is pinned to one protocol revision through
// mcp.ClientSessionOptions.ProtocolVersion. A 2026-07-28 client first probes
// with server/discover and falls back to initialize at 2025-11-25 when the
// server does not speak the stateless revision (as the npm servers do not).
const (
	era2025 = "2025-11-25"
	era2026 = "2026-07-28"
)

var eras = []string{era2025, era2026}

// Upstream transports: how the MCP server itself is reached.
const (
	upStdio = "stdio"
	upHTTP  = "http"
	upSSE   = "sse"
)

// Front doors: how the client reaches the server.
const (
	doorDirect    = "direct"     // no proxy: the baseline
	doorServeHTTP = "serve-http" // agenthelm serve, /mcp/<upstream>, streamable HTTP
	doorServeSSE  = "serve-sse"  // agenthelm serve, /sse/<upstream>, legacy SSE
	doorWrap      = "wrap"       // agenthelm wrap -- CMD, stdio
)

var doors = []string{doorDirect, doorServeHTTP, doorServeSSE, doorWrap}

// target says which server to reach, over which upstream transport, through
// which front door.
type target struct {
	server   string // "everything" or "memory"
	upstream string
	door     string
}

func (t target) String() string { return t.server + "/" + t.upstream + "/" + t.door }

// notApplicable says why a combination is not run, or "" if it is.
func (t target) notApplicable() string {
	switch {
	case t.server == "memory" && t.upstream != upStdio:
		return "server-memory only speaks stdio"
	case t.door == doorWrap && t.upstream != upStdio:
		return "wrap -- CMD runs a stdio command; HTTP upstreams are reached through serve (wrap --upstream is a bridge to serve, not a separate front door)"
	}
	return ""
}

// Canned answers of the client's handlers, which scenarios look for in the
// server's results.
const (
	sampleModel = "conformance-model"
	sampleReply = "a sampled reply from the conformance client"
	rootURI     = "file:///conformance/root"
	rootName    = "conformance-root"
)

var elicitAnswer = map[string]any{
	"name":    "Ada Lovelace",
	"check":   true,
	"email":   "ada@example.com",
	"integer": 7,
}

// session is one go-sdk client session against a target, with everything
// it received recorded.
type session struct {
	tb     testing.TB
	target target
	era    string
	w      *wire
	client *mcp.Client
	cs     *mcp.ClientSession

	mu        sync.Mutex
	progress  []*mcp.ProgressNotificationParams
	logs      []*mcp.LoggingMessageParams
	updated   []string
	samplings []*mcp.CreateMessageParams
	elicits   []*mcp.ElicitParams
	changed   chan struct{}

	memFile string // server-memory's MEMORY_FILE_PATH, when the server is memory

	cmd    *exec.Cmd // the stdio child we started (direct stdio or wrap)
	stderr *lineLog  // its stderr
	cancel context.CancelFunc
	closed bool
}

func (s *session) notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.changed)
	s.changed = make(chan struct{})
}

// waitUntil waits (bounded by ctx) until cond, evaluated under s.mu, holds.
func (s *session) waitUntil(ctx context.Context, what string, cond func() bool) error {
	for {
		s.mu.Lock()
		ok := cond()
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-ch:
		}
	}
}

var clientSeq atomic.Int64

// clientName gives each session its own clientInfo name. agenthelm's saga
// scope "agent" (the default) keys sagas by the agent's identity, which is
// its clientInfo name when no identity header is configured: distinct names
// make every session its own agent, so that one cell's deliberate tool
// errors (which unwind its saga) do not reach into the sagas of the cells
// running beside it.
func (s *session) clientName() string {
	return fmt.Sprintf("agenthelm-conformance-%s-%s-%s-%s-%d", s.target.server, s.target.upstream, s.target.door, s.era, clientSeq.Add(1))
}

func (s *session) newClient() *mcp.Client {
	c := mcp.NewClient(&mcp.Implementation{Name: s.clientName(), Version: "1.0.0"}, &mcp.ClientOptions{
		CreateMessageHandler: func(_ context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			s.mu.Lock()
			s.samplings = append(s.samplings, req.Params)
			s.mu.Unlock()
			s.notify()
			return &mcp.CreateMessageResult{
				Model:      sampleModel,
				Role:       "assistant",
				Content:    &mcp.TextContent{Text: sampleReply},
				StopReason: "endTurn",
			}, nil
		},
		ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			s.mu.Lock()
			s.elicits = append(s.elicits, req.Params)
			s.mu.Unlock()
			s.notify()
			// A copy: the SDK writes the schema's defaults into the
			// content, and matrix cells run in parallel.
			return &mcp.ElicitResult{Action: "accept", Content: maps.Clone(elicitAnswer)}, nil
		},
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			s.mu.Lock()
			s.progress = append(s.progress, req.Params)
			s.mu.Unlock()
			s.notify()
		},
		LoggingMessageHandler: func(_ context.Context, req *mcp.LoggingMessageRequest) {
			s.mu.Lock()
			s.logs = append(s.logs, req.Params)
			s.mu.Unlock()
			s.notify()
		},
		ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			s.mu.Lock()
			s.updated = append(s.updated, req.Params.URI)
			s.mu.Unlock()
			s.notify()
		},
	})
	c.AddRoots(&mcp.Root{URI: rootURI, Name: rootName})
	if err := mcp.AddSendingCustomMethod[*mcp.PingParams, *mcp.ListToolsResult](c, unknownMethod); err != nil {
		panic(err)
	}
	return c
}

// unknownMethod is a method no server implements.
const unknownMethod = "conformance/no-such-method"

// stdioCommand returns the command line that runs tgt's server over stdio,
// and the extra environment it needs.
func stdioCommand(tb testing.TB, tgt target, memFile string) (argv, env []string) {
	switch tgt.server {
	case "memory":
		return testservers.Memory(tb), []string{testservers.MemoryEnv(memFile)}
	default:
		return testservers.Everything(tb), nil
	}
}

// dial connects a new client session to tgt at era. The session closes (and
// every process it started ends) in tb's cleanup.
func dial(ctx context.Context, tb testing.TB, tgt target, era string) (*session, error) {
	s := newSession(tb, tgt, era)
	if tgt.server == "memory" {
		if tgt.door == doorServeHTTP || tgt.door == doorServeSSE {
			s.memFile = filepath.Join(suite.tmp, "serve-memory", memoryUpstream(tgt.door, era)+".jsonl")
		} else {
			dir, err := os.MkdirTemp(suite.tmp, "memory-")
			if err != nil {
				return nil, err
			}
			s.memFile = filepath.Join(dir, "memory.jsonl")
		}
	}
	var transport mcp.Transport
	switch tgt.door {
	case doorDirect:
		switch tgt.upstream {
		case upStdio:
			argv, env := stdioCommand(tb, tgt, s.memFile)
			transport = s.commandTransport(argv, env)
		case upHTTP:
			srv, err := everythingOver(tb, "streamableHttp")
			if err != nil {
				return nil, err
			}
			transport = s.streamable(srv.base + "/mcp")
		case upSSE:
			srv, err := everythingOver(tb, "sse")
			if err != nil {
				return nil, err
			}
			transport = &tapTransport{Transport: &mcp.SSEClientTransport{Endpoint: srv.base + "/sse"}, w: s.w}
		}
	case doorServeHTTP, doorServeSSE:
		srv, err := sharedServe(tb)
		if err != nil {
			return nil, err
		}
		name := upstreamName(tgt, era)
		if tgt.door == doorServeHTTP {
			transport = s.streamable(srv.mcp + "/mcp/" + name)
		} else {
			transport = &tapTransport{Transport: &mcp.SSEClientTransport{Endpoint: srv.mcp + "/sse/" + name}, w: s.w}
		}
	case doorWrap:
		bin, err := agenthelmBin()
		if err != nil {
			return nil, err
		}
		argv, env := stdioCommand(tb, tgt, s.memFile)
		dataDir, err := os.MkdirTemp(suite.tmp, "wrap-")
		if err != nil {
			return nil, err
		}
		env = append(env, "AGENTHELM_DATA_DIR="+dataDir)
		args, err := wrapArgs(bin, argv...)
		if err != nil {
			return nil, err
		}
		transport = s.commandTransport(args, env)
	default:
		return nil, fmt.Errorf("unknown door %q", tgt.door)
	}
	tb.Cleanup(s.close)
	if err := s.connect(ctx, transport); err != nil {
		return nil, err
	}
	return s, nil
}

func newSession(tb testing.TB, tgt target, era string) *session {
	return &session{tb: tb, target: tgt, era: era, w: newWire(), changed: make(chan struct{}), stderr: newLineLog()}
}

// connect runs the MCP handshake over transport. The legacy SSE client ties
// its event stream to the context given to Connect, so that context lives
// as long as the session; ctx only bounds the handshake.
func (s *session) connect(ctx context.Context, transport mcp.Transport) error {
	sessCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	stop := context.AfterFunc(ctx, cancel)
	s.client = s.newClient()
	cs, err := s.client.Connect(sessCtx, transport, &mcp.ClientSessionOptions{ProtocolVersion: s.era})
	if !stop() {
		return fmt.Errorf("connect: %w (%w)", ctx.Err(), err)
	}
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	s.cs = cs
	return nil
}

// upstreamName is the serve upstream that stands for tgt.
func upstreamName(tgt target, era string) string {
	if tgt.server == "memory" {
		return memoryUpstream(tgt.door, era)
	}
	switch tgt.upstream {
	case upHTTP:
		return "ev-http"
	case upSSE:
		return "ev-sse"
	}
	return "everything"
}

func (s *session) streamable(endpoint string) mcp.Transport {
	return &mcp.StreamableClientTransport{
		Endpoint:   endpoint,
		HTTPClient: &http.Client{Transport: &teeTransport{base: http.DefaultTransport, w: s.w}},
		MaxRetries: -1, // a dropped stream is a failure to report, not to paper over
	}
}

func (s *session) commandTransport(argv, env []string) mcp.Transport {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = &lineWriter{log: s.stderr}
	s.cmd = cmd
	return &tapTransport{Transport: &mcp.CommandTransport{Command: cmd, TerminateDuration: 3 * time.Second}, w: s.w}
}

// close ends the session and every process it started. For wrap it also
// checks that wrap's own children ended with it.
func (s *session) close() {
	if s.closed {
		return
	}
	s.closed = true
	var kids []procID
	if s.cmd != nil && s.cmd.Process != nil {
		kids = descendants(s.cmd.Process.Pid)
	}
	if s.cs != nil {
		_ = s.cs.Close()
	}
	if s.cancel != nil {
		s.cancel()
	}
	if s.cmd != nil && s.cmd.Process != nil {
		// CommandTransport.Close waited for the process; make sure nothing of
		// its group lives on.
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		if left := reapLeftovers(kids, 5*time.Second); len(left) > 0 && s.target.door == doorWrap {
			s.tb.Errorf("agenthelm wrap left processes running after its client closed stdin: %v", left)
		}
	}
}

// lineWriter feeds a child's output into a lineLog.
type lineWriter struct {
	log *lineLog
	mu  sync.Mutex
	buf []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := slices.Index(w.buf, '\n')
		if i < 0 {
			break
		}
		w.log.add(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}
