package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/internal/syncbuf"
	"github.com/agenthelm/agenthelm/internal/testservers"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Errors through the proxy, black box. What the spec says about the HTTP
// status (2025-11-25 "Sending Messages to the Server"; 2026-07-28 "Sending
// Messages" is the same): a POST body MUST be a single JSON-RPC request,
// notification or response. Only a *request* is answered with 200 (a JSON
// object or an SSE stream); input the server cannot accept gets an HTTP
// error status ("e.g., 400 Bad Request") whose body MAY be a JSON-RPC error
// response without an id. The spec names no status for unparseable bodies
// in particular; since malformed JSON, a batch (MCP dropped batching in
// 2025-06-18) and a non-message are not requests, the only answer it allows
// is an HTTP error status, and 400 is the one it names (the TypeScript SDK
// that server-everything uses answers 400 -32700 too). So: HTTP 400, a
// JSON-RPC error -32700 or -32600, and, per JSON-RPC 2.0, id null unless the
// id could be read from the invalid request.

var (
	checkParseError      = registerCheck("malformed JSON POST: HTTP 400, JSON-RPC -32700, id null")
	checkBatch           = registerCheck("JSON array (batch) POST: HTTP 400, JSON-RPC -32600")
	checkNotRequest      = registerCheck("JSON that is not a JSON-RPC request (object without method, number, string, jsonrpc 1.0, object id): HTTP 400, JSON-RPC -32600")
	checkNoSuchUpstream  = registerCheck("/mcp/nosuch: HTTP 404 listing the configured upstreams")
	checkNoSuchSSE       = registerCheck("/sse/nosuch: HTTP 404 listing the configured upstreams")
	checkBrokenUpstream  = registerCheck("upstream command exits at once: JSON-RPC error naming the upstream (serve)")
	checkBrokenWrap      = registerCheck("upstream command exits at once: the client gets an error, not a hang (wrap)")
	checkSessionSurvives = registerCheck("one session's stdio upstream dies: that session gets an error (not a hang), another session keeps working, a new one works")
	checkServeStops      = registerCheck("SIGTERM: serve exits 0 and its upstream processes end")
	checkProtoHeader     = registerCheck("unsupported MCP-Protocol-Version header in a session: HTTP 400 (as server-everything over HTTP answers directly)")
	checkCloseHTTP       = registerCheck("client closes a /mcp session (DELETE): its stdio upstream process ends")
	checkCloseSSE        = registerCheck("client closes a /sse session (drops the stream): its stdio upstream process ends")
	checkWrapHeldEOF     = registerCheck("wrap: the client goes away (stdin EOF) while a call is held for approval: wrap and its upstream exit")
	checkCancelledStream = registerCheck("a cancelled call's response stream ends by limits.call_timeout (the upstream never answers a cancelled call)")
)

// knownCheckGaps maps a check (its registered name) to the reason it is
// accepted to fail. Empty: every failing check fails the test.
var knownCheckGaps = map[string]string{}

// recordCheck stores a check's outcome for the document and fails t on
// error, unless the check is a known gap.
func recordCheck(t *testing.T, name string, err error) {
	t.Helper()
	gap := knownCheckGaps[name]
	switch {
	case err == nil && gap == "":
		setCheck(name, cellResult{statusPass, ""})
	case err == nil:
		setCheck(name, cellResult{statusFail, "listed as a known gap but passes: remove it from knownCheckGaps"})
		t.Errorf("%s: known gap %q no longer fails: remove it from knownCheckGaps", name, gap)
	case gap != "":
		setCheck(name, cellResult{statusGap, gap})
		t.Logf("%s: known gap (%s): %v", name, gap, err)
	default:
		setCheck(name, cellResult{statusFail, summarize(err)})
		t.Errorf("%s: %v", name, err)
	}
}

// errorsServe is a serve with a healthy upstream and one whose command
// exits at once.
func errorsServe(t *testing.T) *serveProc {
	ev := testservers.Everything(t)
	s, err := fixture("serve-errors", func() (*serveProc, error) {
		cfg := "limits: {call_timeout: 3s}\n" +
			"upstreams:\n" +
			"  everything: {command: " + yamlList(ev...) + "}\n" +
			"  broken: {command: " + yamlList("node", "-e", "process.exit(3)") + "}\n"
		s, err := startServe("serve-errors", cfg)
		if err != nil {
			return nil, err
		}
		track(s.p)
		return s, nil
	})
	if err != nil {
		for _, c := range []string{checkParseError, checkBatch, checkNotRequest, checkNoSuchUpstream, checkNoSuchSSE,
			checkBrokenUpstream, checkSessionSurvives, checkProtoHeader, checkCloseHTTP, checkCloseSSE, checkCancelledStream} {
			setCheck(c, cellResult{statusFail, summarize(err)})
		}
		t.Fatalf("start agenthelm serve: %v", err)
	}
	return s
}

type httpAnswer struct {
	status int
	ctype  string
	body   []byte
	msg    map[string]json.RawMessage // the JSON-RPC message in the body (JSON or first SSE data event)
}

func post(ctx context.Context, url, body string, hdr map[string]string) (*httpAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	a := &httpAnswer{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type")}
	a.body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return a, err
	}
	payload := a.body
	if strings.HasPrefix(a.ctype, "text/event-stream") {
		payload = nil
		for _, line := range strings.Split(string(a.body), "\n") {
			if d, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "data:"); ok && strings.TrimSpace(d) != "" {
				payload = []byte(strings.TrimSpace(d))
				break
			}
		}
	}
	_ = json.Unmarshal(payload, &a.msg)
	return a, nil
}

func (a *httpAnswer) String() string {
	return fmt.Sprintf("HTTP %d %s %s", a.status, a.ctype, bytes.TrimSpace(a.body))
}

// rpcErr returns the JSON-RPC error in the answer, if any.
func (a *httpAnswer) rpcErr() *rpcError {
	var e rpcError
	if raw, ok := a.msg["error"]; ok && json.Unmarshal(raw, &e) == nil {
		return &e
	}
	return nil
}

// expectRPCError checks status, a JSON-RPC error code and the id: null, or
// one of ids (the request's id, where it could be read).
func expectRPCError(a *httpAnswer, status, code int, ids ...string) error {
	var errs []error
	if a.status != status {
		errs = append(errs, fmt.Errorf("status %d, want %d", a.status, status))
	}
	e := a.rpcErr()
	switch {
	case e == nil:
		errs = append(errs, fmt.Errorf("no JSON-RPC error in the body"))
	case e.Code != code:
		errs = append(errs, fmt.Errorf("JSON-RPC code %d, want %d", e.Code, code))
	}
	if id, ok := a.msg["id"]; e != nil && (!ok || (string(id) != "null" && !slices.Contains(ids, string(id)))) {
		errs = append(errs, fmt.Errorf("id %s, want null or one of %v", id, ids))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: got %s", errors.Join(errs...), a)
	}
	return nil
}

func TestErrorsThroughProxy(t *testing.T) {
	t.Parallel()
	srv := errorsServe(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	url := srv.mcp + "/mcp/everything"

	t.Run("parse-error", func(t *testing.T) {
		a, err := post(ctx, url, `{"jsonrpc":"2.0","id":1,"method":"tools/list"`, nil)
		if err == nil {
			err = expectRPCError(a, http.StatusBadRequest, -32700)
		}
		recordCheck(t, checkParseError, err)
	})
	t.Run("batch", func(t *testing.T) {
		a, err := post(ctx, url, `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]`, nil)
		if err == nil {
			err = expectRPCError(a, http.StatusBadRequest, -32600)
		}
		recordCheck(t, checkBatch, err)
	})
	t.Run("not-a-request", func(t *testing.T) {
		var errs []error
		for _, body := range []string{`{"hello":"world"}`, `42`, `"ping"`, `{"jsonrpc":"1.0","id":1,"method":"ping"}`, `{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}`} {
			a, err := post(ctx, url, body, nil)
			if err == nil {
				// JSON-RPC 2.0: the id is null unless it could be read from
				// the invalid request.
				err = expectRPCError(a, http.StatusBadRequest, -32600, "1")
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("POST %s: %w", body, err))
			}
		}
		recordCheck(t, checkNotRequest, errors.Join(errs...))
	})
	for _, tc := range []struct{ name, path, check string }{
		{"no-such-upstream", "/mcp/nosuch", checkNoSuchUpstream},
		{"no-such-upstream-sse", "/sse/nosuch", checkNoSuchSSE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a *httpAnswer
			var err error
			if tc.path == "/sse/nosuch" {
				a, err = get(ctx, srv.mcp+tc.path)
			} else {
				a, err = post(ctx, srv.mcp+tc.path, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}`, nil)
			}
			if err == nil {
				var errs []error
				if a.status != http.StatusNotFound {
					errs = append(errs, fmt.Errorf("status %d, want 404", a.status))
				}
				for _, name := range []string{"everything", "broken"} {
					if !bytes.Contains(a.body, []byte(name)) {
						errs = append(errs, fmt.Errorf("body does not name upstream %q", name))
					}
				}
				if len(errs) > 0 {
					err = fmt.Errorf("%w: got %s", errors.Join(errs...), a)
				}
			}
			recordCheck(t, tc.check, err)
		})
	}
	t.Run("broken-upstream", func(t *testing.T) {
		recordCheck(t, checkBrokenUpstream, brokenUpstream(ctx, srv))
	})
	t.Run("session-survives", func(t *testing.T) {
		recordCheck(t, checkSessionSurvives, sessionSurvives(ctx, t, srv))
	})
	t.Run("protocol-version-header", func(t *testing.T) {
		recordCheck(t, checkProtoHeader, protocolHeader(ctx, t, url))
	})
	t.Run("close-ends-upstream", func(t *testing.T) {
		recordCheck(t, checkCloseHTTP, closeEndsUpstream(ctx, t, srv, doorServeHTTP))
		recordCheck(t, checkCloseSSE, closeEndsUpstream(ctx, t, srv, doorServeSSE))
	})
	t.Run("cancelled-stream", func(t *testing.T) {
		recordCheck(t, checkCancelledStream, cancelledStream(ctx, url))
	})
}

const rawInitialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"agenthelm-conformance-raw","version":"1"}}}`

// rawSession initializes a 2025-11-25 session with plain HTTP and returns
// the headers later requests need.
func rawSession(ctx context.Context, url string) (map[string]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(rawInitialize))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	// The initialize response may be an SSE stream: read its first event
	// only, the stream ends with the response anyway.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || sid == "" {
		return nil, fmt.Errorf("initialize: HTTP %d, session %q: %s", resp.StatusCode, sid, body)
	}
	hdr := map[string]string{"Mcp-Session-Id": sid, "MCP-Protocol-Version": era2025}
	a, err := post(ctx, url, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, hdr)
	if err != nil {
		return nil, err
	}
	if a.status != http.StatusAccepted {
		return nil, fmt.Errorf("notifications/initialized: %s", a)
	}
	return hdr, nil
}

// protocolHeader: spec 2025-11-25, "Protocol Version Header": a request with
// an invalid or unsupported MCP-Protocol-Version MUST get 400 Bad Request.
// server-everything over streamable HTTP does that; the proxy must too
// (whatever its upstream's transport).
func protocolHeader(ctx context.Context, t *testing.T, url string) error {
	bad := func(url string) (*httpAnswer, error) {
		hdr, err := rawSession(ctx, url)
		if err != nil {
			return nil, err
		}
		hdr["MCP-Protocol-Version"] = "1999-01-01"
		return post(ctx, url, `{"jsonrpc":"2.0","id":2,"method":"ping"}`, hdr)
	}
	if srv, err := everythingOver(t, "streamableHttp"); err == nil {
		if a, err := bad(srv.base + "/mcp"); err == nil {
			t.Logf("server-everything directly: %s", a)
		}
	}
	a, err := bad(url)
	if err != nil {
		return err
	}
	if a.status != http.StatusBadRequest {
		return fmt.Errorf("ping with MCP-Protocol-Version: 1999-01-01 got %s, want HTTP 400", a)
	}
	return nil
}

// closeEndsUpstream: when a client ends its session, the session's stdio
// upstream process must end too (no process per past session).
func closeEndsUpstream(ctx context.Context, t *testing.T, srv *serveProc, door string) error {
	before := descendants(srv.p.pid())
	s := newSession(t, target{"everything", upStdio, door}, era2025)
	var transport mcp.Transport
	if door == doorServeHTTP {
		transport = s.streamable(srv.mcp + "/mcp/everything")
	} else {
		transport = &tapTransport{Transport: &mcp.SSEClientTransport{Endpoint: srv.mcp + "/sse/everything"}, w: s.w}
	}
	t.Cleanup(s.close)
	if err := s.connect(ctx, transport); err != nil {
		return err
	}
	if err := s.cs.Ping(ctx, nil); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	var fresh []procID
	for _, p := range descendants(srv.p.pid()) {
		if !slices.Contains(before, p) && p.comm == "node" {
			fresh = append(fresh, p)
		}
	}
	if len(fresh) == 0 {
		return fmt.Errorf("no upstream process appeared for the session")
	}
	s.close()
	if left := reapLeftovers(fresh, 10*time.Second); len(left) > 0 {
		return fmt.Errorf("upstream process %v still running after the client closed its session", left)
	}
	return nil
}

// cancelledStream: the upstream does not answer a call it was told is
// cancelled; the proxy must still end that call's response stream, at the
// latest when limits.call_timeout (3s here) has passed.
func cancelledStream(ctx context.Context, url string) error {
	hdr, err := rawSession(ctx, url)
	if err != nil {
		return err
	}
	type result struct {
		a   *httpAnswer
		err error
	}
	done := make(chan result, 1)
	lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	go func() {
		a, err := post(lctx, url, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"trigger-long-running-operation","arguments":{"duration":30,"steps":1}}}`, hdr)
		done <- result{a, err}
	}()
	sleepCtx(ctx, 300*time.Millisecond)
	if a, err := post(ctx, url, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2,"reason":"conformance"}}`, hdr); err != nil || a.status != http.StatusAccepted {
		return fmt.Errorf("notifications/cancelled: %v %v", a, err)
	}
	r := <-done
	if r.err != nil {
		return fmt.Errorf("the cancelled call's stream was still open long after limits.call_timeout: %v", r.err)
	}
	return nil
}

func get(ctx context.Context, url string) (*httpAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	a := &httpAnswer{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type")}
	if resp.StatusCode == http.StatusOK {
		return a, nil // an event stream: do not wait for it to end
	}
	a.body, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = json.Unmarshal(a.body, &a.msg)
	return a, nil
}

// brokenUpstream: initialize against an upstream whose process exits at once
// must end in a JSON-RPC error that names the upstream, promptly.
func brokenUpstream(ctx context.Context, srv *serveProc) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	a, err := post(ctx, srv.mcp+"/mcp/broken",
		`{"jsonrpc":"2.0","id":7,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}`, nil)
	if err != nil {
		return fmt.Errorf("initialize: %w", err)
	}
	e := a.rpcErr()
	switch {
	case e == nil:
		return fmt.Errorf("no JSON-RPC error: %s", a)
	case !strings.Contains(e.Message+string(e.Data), "broken"):
		return fmt.Errorf("the error does not name upstream \"broken\": %s", a)
	case string(a.msg["id"]) != "7":
		return fmt.Errorf("the error's id is %s, want the request's id 7: %s", a.msg["id"], a)
	}
	return nil
}

// sessionSurvives: two sessions on one stdio upstream; kill the upstream
// process of the second; the second gets an error (not a hang), the first
// keeps working, and a new session works.
func sessionSurvives(ctx context.Context, t *testing.T, srv *serveProc) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	echo := func(s *session, msg string) error {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		res, err := s.cs.CallTool(cctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": msg}})
		if err != nil {
			return err
		}
		if got := resultText(res); got != "Echo: "+msg {
			return fmt.Errorf("echo = %q", got)
		}
		return nil
	}
	a, err := dialURL(ctx, t, srv.mcp+"/mcp/everything")
	if err != nil {
		return fmt.Errorf("session A: %w", err)
	}
	if err := echo(a, "A1"); err != nil {
		return fmt.Errorf("session A before: %w", err)
	}
	before := descendants(srv.p.pid())
	b, err := dialURL(ctx, t, srv.mcp+"/mcp/everything")
	if err != nil {
		return fmt.Errorf("session B: %w", err)
	}
	if err := echo(b, "B1"); err != nil {
		return fmt.Errorf("session B before: %w", err)
	}
	var fresh []procID
	for _, p := range descendants(srv.p.pid()) {
		if !slices.Contains(before, p) && p.comm == "node" {
			fresh = append(fresh, p)
		}
	}
	if len(fresh) != 1 {
		return fmt.Errorf("expected exactly one new upstream process for session B, found %v (before: %v)", fresh, before)
	}
	_ = syscall.Kill(fresh[0].pid, syscall.SIGKILL)
	reapLeftovers(fresh, 5*time.Second)
	var errs []error
	// B must get an error, promptly (echo is bounded). Whether it is a
	// JSON-RPC error or the session ending (its streams closed, 404 after)
	// depends on which the proxy notices first; both are fine.
	if err := echo(b, "B2"); err == nil {
		errs = append(errs, fmt.Errorf("session B: a call after its upstream died succeeded"))
	} else if ctx.Err() != nil {
		errs = append(errs, fmt.Errorf("session B: no answer within the bound: %v", err))
	} else {
		t.Logf("session B after its upstream died: %v", err)
	}
	if err := echo(a, "A2"); err != nil {
		errs = append(errs, fmt.Errorf("session A after B's upstream died: %w", err))
	}
	c, err := dialURL(ctx, t, srv.mcp+"/mcp/everything")
	if err != nil {
		errs = append(errs, fmt.Errorf("session C: %w", err))
	} else if err := echo(c, "C1"); err != nil {
		errs = append(errs, fmt.Errorf("session C: %w", err))
	}
	return errors.Join(errs...)
}

// dialURL opens a 2025-11-25 streamable session to an explicit URL.
func dialURL(ctx context.Context, tb testing.TB, url string) (*session, error) {
	s := newSession(tb, target{"everything", upStdio, doorServeHTTP}, era2025)
	tb.Cleanup(s.close)
	if err := s.connect(ctx, s.streamable(url)); err != nil {
		return nil, err
	}
	return s, nil
}

// TestWrapBrokenUpstream: wrap around a command that exits at once must give
// its client an error (a JSON-RPC error or a closed connection), not a hang.
func TestWrapBrokenUpstream(t *testing.T) {
	t.Parallel()
	bin, err := agenthelmBin()
	if err != nil {
		recordCheck(t, checkBrokenWrap, err)
		return
	}
	args, err := wrapArgs(bin, "node", "-e", "process.exit(3)")
	if err != nil {
		recordCheck(t, checkBrokenWrap, err)
		return
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "AGENTHELM_DATA_DIR="+t.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "agenthelm-conformance", Version: "1.0.0"}, nil)
	cs, err := c.Connect(ctx, &mcp.CommandTransport{Command: cmd, TerminateDuration: 2 * time.Second}, &mcp.ClientSessionOptions{ProtocolVersion: era2025})
	if cmd.Process != nil {
		defer syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) //nolint:errcheck
	}
	switch {
	case err == nil:
		cs.Close()
		err = fmt.Errorf("initialize succeeded against a command that exits at once")
	case ctx.Err() != nil:
		err = fmt.Errorf("no answer within the bound: %v; stderr: %s", err, firstLine(stderr.String()))
	default:
		t.Logf("wrap answered: %v; stderr: %s", err, firstLine(stderr.String()))
		err = nil
	}
	recordCheck(t, checkBrokenWrap, err)
}

// TestServeStopsCleanly: with a session open (so a stdio upstream runs),
// SIGTERM makes serve exit 0 and take its upstream processes with it.
func TestServeStopsCleanly(t *testing.T) {
	t.Parallel()
	ev := testservers.Everything(t)
	s, err := startServe("serve-stop", "upstreams:\n  everything: {command: "+yamlList(ev...)+"}\n")
	if err != nil {
		recordCheck(t, checkServeStops, err)
		return
	}
	defer s.p.stop(syscall.SIGKILL, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sess, err := dialURL(ctx, t, s.mcp+"/mcp/everything")
	if err != nil {
		recordCheck(t, checkServeStops, fmt.Errorf("session: %w", err))
		return
	}
	if _, err := sess.cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "x"}}); err != nil {
		recordCheck(t, checkServeStops, fmt.Errorf("echo: %w", err))
		return
	}
	kids := descendants(s.p.pid())
	exitErr, killed := s.p.stop(syscall.SIGTERM, 20*time.Second)
	left := reapLeftovers(kids, 5*time.Second)
	var errs []error
	if killed {
		errs = append(errs, fmt.Errorf("serve did not exit within the bound after SIGTERM"))
	} else if exitErr != nil {
		errs = append(errs, fmt.Errorf("serve exited with %v after SIGTERM", exitErr))
	}
	if len(kids) == 0 {
		errs = append(errs, fmt.Errorf("no upstream process was running while a session was open"))
	}
	if len(left) > 0 {
		errs = append(errs, fmt.Errorf("processes left running after serve exited: %v", left))
	}
	if len(errs) > 0 {
		errs = append(errs, fmt.Errorf("serve output:\n%s", s.p.out.tail(10)))
	}
	recordCheck(t, checkServeStops, errors.Join(errs...))
}

// TestWrapHeldCallClientGone: an agent that exits while one of its calls
// waits for approval closes wrap's stdin. wrap must then end (withdrawing
// the held call) and take its upstream with it, rather than wait for the
// approval to expire.
func TestWrapHeldCallClientGone(t *testing.T) {
	t.Parallel()
	recordCheck(t, checkWrapHeldEOF, wrapHeldCallClientGone(t))
}

func wrapHeldCallClientGone(t *testing.T) error {
	bin, err := agenthelmBin()
	if err != nil {
		return err
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "hold.yaml")
	policyDir, err := filepath.Abs(filepath.Join("testdata", "hold-policy"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(cfg, []byte("policy: {dir: "+yamlString(policyDir)+"}\n"), 0o644); err != nil {
		return err
	}
	argv := append([]string{bin, "wrap", "--config", cfg, "--"}, testservers.Memory(t)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "AGENTHELM_DATA_DIR="+filepath.Join(dir, "data"), testservers.MemoryEnv(filepath.Join(dir, "mem.jsonl")))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() {
		_, _ = io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	var kids []procID
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		reapLeftovers(kids, 5*time.Second)
	}()
	for _, line := range []string{
		rawInitialize,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"read_graph","arguments":{}}}`,
	} {
		if _, err := io.WriteString(stdin, line+"\n"); err != nil {
			return fmt.Errorf("write to wrap: %w", err)
		}
	}
	// Wait (bounded) until wrap reports the call held.
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(stderr.String(), "held for approval") {
		if time.Now().After(deadline) {
			return fmt.Errorf("the call was not held for approval; wrap's log:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	kids = descendants(cmd.Process.Pid)
	stdin.Close() // the agent is gone
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
			return fmt.Errorf("wrap kept running after its stdin closed while a call was held; it exited only on SIGTERM")
		case <-time.After(15 * time.Second):
			return fmt.Errorf("wrap kept running after its stdin closed while a call was held, and after SIGTERM")
		}
	}
	if left := reapLeftovers(kids, 5*time.Second); len(left) > 0 {
		return fmt.Errorf("wrap exited but left %v running", left)
	}
	return nil
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer = syncbuf.Buffer
