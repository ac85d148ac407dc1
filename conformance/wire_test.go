package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The wire recorder keeps every JSON-RPC frame a client session sends and
// receives, as raw JSON. Scenarios compare these raw frames, not the
// go-sdk's typed results: decoding into typed structs would hide unknown
// fields the proxy might drop or add.
//
// Two taps exist because the go-sdk's streamable client only works when its
// Connection is the SDK's own (it learns the session and protocol version
// through an unexported method), so it cannot be wrapped: streamable HTTP is
// tapped at the HTTP layer (teeTransport), stdio and legacy SSE at the
// mcp.Connection layer (tapTransport).

// Frame directions.
const (
	toServer = "c2s"
	toClient = "s2c"
)

type rpcError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

type frame struct {
	seq    int
	dir    string
	raw    json.RawMessage
	id     json.RawMessage // nil for notifications
	method string          // requests and notifications
	params json.RawMessage
	result json.RawMessage
	err    *rpcError
}

func (f *frame) isRequest() bool  { return f.method != "" && f.id != nil }
func (f *frame) isResponse() bool { return f.method == "" && (f.result != nil || f.err != nil) }

// idKey is a canonical key for an id, so "1" and 1 stay apart.
func idKey(id json.RawMessage) string {
	var v any
	if err := json.Unmarshal(id, &v); err != nil {
		return string(id)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

type wire struct {
	mu      sync.Mutex
	frames  []*frame
	bad     []string // things that were not JSON-RPC frames
	changed chan struct{}
}

func newWire() *wire { return &wire{changed: make(chan struct{})} }

// add records one frame (or, for a JSON array, each element).
func (w *wire) add(dir string, raw []byte) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return
	}
	if raw[0] == '[' {
		var batch []json.RawMessage
		if err := json.Unmarshal(raw, &batch); err == nil {
			for _, m := range batch {
				w.add(dir, m)
			}
			return
		}
	}
	var env struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
		Result json.RawMessage `json:"result"`
		Error  *rpcError       `json:"error"`
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := json.Unmarshal(raw, &env); err != nil {
		w.bad = append(w.bad, fmt.Sprintf("%s %q: %v", dir, raw, err))
		return
	}
	if string(env.ID) == "null" && env.Method != "" {
		env.ID = nil
	}
	f := &frame{
		seq: len(w.frames), dir: dir, raw: append(json.RawMessage(nil), raw...),
		id: env.ID, method: env.Method, params: env.Params, result: env.Result, err: env.Error,
	}
	w.frames = append(w.frames, f)
	close(w.changed)
	w.changed = make(chan struct{})
}

func (w *wire) snapshot() ([]*frame, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*frame(nil), w.frames...), w.changed
}

// lastCall returns the last client request for method and the server's
// response to it (nil if none arrived).
func (w *wire) lastCall(method string) (req, resp *frame) {
	frames, _ := w.snapshot()
	for i := len(frames) - 1; i >= 0; i-- {
		f := frames[i]
		if f.dir == toServer && f.isRequest() && f.method == method {
			req = f
			break
		}
	}
	if req == nil {
		return nil, nil
	}
	for _, f := range frames[req.seq+1:] {
		if f.dir == toClient && f.isResponse() && idKey(f.id) == idKey(req.id) {
			return req, f
		}
	}
	// An HTTP server that rejects a POST may answer with an error whose id
	// is null (it could not tie the error to the request); take the first
	// such error after the request as its answer.
	for _, f := range frames[req.seq+1:] {
		if f.dir == toClient && f.err != nil && (f.id == nil || string(f.id) == "null") {
			return req, f
		}
	}
	return req, nil
}

// waitFrame waits until a frame after seq from satisfies match.
func (w *wire) waitFrame(ctx context.Context, from int, match func(*frame) bool) (*frame, error) {
	for {
		frames, changed := w.snapshot()
		for _, f := range frames[min(from, len(frames)):] {
			if match(f) {
				return f, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for a frame: %w", ctx.Err())
		case <-changed:
		}
	}
}

func (w *wire) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.frames)
}

// dump renders the frames for a failure message, each cut to a readable size.
func (w *wire) dump(from int) string {
	frames, _ := w.snapshot()
	var b strings.Builder
	for _, f := range frames[min(from, len(frames)):] {
		raw := string(f.raw)
		if len(raw) > 400 {
			raw = raw[:400] + "..."
		}
		fmt.Fprintf(&b, "  %s %s\n", f.dir, raw)
	}
	return b.String()
}

// tapTransport records the frames of an mcp.Connection. Use it only for
// transports whose connections need nothing but the public interface (stdio,
// legacy SSE).
type tapTransport struct {
	mcp.Transport
	w *wire
}

func (t *tapTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	c, err := t.Transport.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &tapConn{Connection: c, w: t.w}, nil
}

type tapConn struct {
	mcp.Connection
	w *wire
}

func (c *tapConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	m, err := c.Connection.Read(ctx)
	if err == nil {
		if b, err := jsonrpc.EncodeMessage(m); err == nil {
			c.w.add(toClient, b)
		}
	}
	return m, err
}

func (c *tapConn) Write(ctx context.Context, m jsonrpc.Message) error {
	if b, err := jsonrpc.EncodeMessage(m); err == nil {
		c.w.add(toServer, b)
	}
	return c.Connection.Write(ctx, m)
}

// teeTransport records the JSON-RPC frames in streamable HTTP requests and
// responses (JSON bodies and text/event-stream bodies).
type teeTransport struct {
	base http.RoundTripper
	w    *wire
}

func (t *teeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Method == http.MethodPost {
		body, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		t.w.add(toServer, body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	ct := resp.Header.Get("Content-Type")
	switch {
	case strings.HasPrefix(ct, "text/event-stream"):
		resp.Body = &sseTee{ReadCloser: resp.Body, w: t.w}
	case strings.HasPrefix(ct, "application/json"):
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		// JSON-RPC errors also come with 4xx statuses (e.g. a rejected
		// server/discover); record every JSON body.
		t.w.add(toClient, body)
		resp.Body = io.NopCloser(bytes.NewReader(body))
	}
	return resp, nil
}

// sseTee parses the server-sent events passing through it and records the
// data of each "message" event.
type sseTee struct {
	io.ReadCloser
	w       *wire
	pending []byte
	data    []string
	event   string
}

func (s *sseTee) Read(p []byte) (int, error) {
	n, err := s.ReadCloser.Read(p)
	s.pending = append(s.pending, p[:n]...)
	for {
		i := bytes.IndexByte(s.pending, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimSuffix(string(s.pending[:i]), "\r")
		s.pending = s.pending[i+1:]
		s.line(line)
	}
	return n, err
}

func (s *sseTee) line(line string) {
	switch {
	case line == "":
		if len(s.data) > 0 && (s.event == "" || s.event == "message") {
			s.w.add(toClient, []byte(strings.Join(s.data, "\n")))
		}
		s.data, s.event = nil, ""
	case strings.HasPrefix(line, "data:"):
		s.data = append(s.data, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
	case strings.HasPrefix(line, "event:"):
		s.event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
	}
}
