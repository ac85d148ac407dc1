package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
	"github.com/agenthelm/agenthelm/proxy/upstream"
	"github.com/agenthelm/agenthelm/toolcall"
)

var (
	errCallTimeout     = toolcall.ErrTimeout
	errForwardedTwice  = errors.New("a tool call can be forwarded only once")
	errSessionFinished = errors.New("session closed")
)

// interceptToolCall runs one tools/call through the interceptor and answers
// the agent with whatever it decides.
func (s *Session) interceptToolCall(ctx context.Context, r *request, msg *jsonrpc.Message, hdr http.Header) {
	defer s.wg.Done()
	defer r.cancel()
	key := jsonrpc.IDKey(r.upID)

	params, perr := toolCallParams(msg.Params)
	if perr != nil {
		s.mu.Lock()
		if cur := s.pending[key]; cur == r {
			s.deleteLocked(key, r)
		}
		s.mu.Unlock()
		s.answer(r.out, jsonrpc.NewErrorResponse(r.agentID, perr))
		return
	}
	s.mu.Lock()
	pv, client := s.protocolVersion, s.client
	s.mu.Unlock()
	if v := headerOrMeta(hdr, msg.Params); v != "" {
		pv = v
	}
	call := &toolcall.Call{
		Upstream:  s.upstream,
		Tool:      params.Name,
		Arguments: params.Arguments,
		Params:    msg.Params,
		RequestID: r.agentID,
		Transport: toolcall.Transport{
			Kind: "mcp", Protocol: s.door, ProtocolVersion: pv, Method: "tools/call",
		},
		Client: client,
		Notify: func(_ context.Context, m *jsonrpc.Message) error {
			if !r.out.st.push(m, false) {
				return errors.New("agent stream closed")
			}
			return nil
		},
	}
	if !s.shared {
		call.Transport.SessionID = s.id
		s.mu.Lock()
		canAsk := s.elicitation
		s.mu.Unlock()
		if canAsk {
			call.Ask = func(ctx context.Context, method string, params json.RawMessage) (toolcall.Result, error) {
				return s.ask(ctx, r.out, method, params)
			}
		}
	}
	call.Transport.Headers = s.p.selectedHeaders(hdr)
	call.CanRequestInput = canRequestInput(pv, msg.Params)
	if v := s.p.opts.VerifyToken; v != nil && hdr != nil {
		// Verified by the door already; this reads the verifier's cache.
		call.TokenSubject, _ = v(hdr.Get("Authorization"))
	}
	if call.Client.Name == "" {
		call.Client = metaClientInfo(msg.Params)
	}

	var forwarded atomic.Bool
	var upstreamFrame *jsonrpc.Message
	forward := func(fctx context.Context, p json.RawMessage) (toolcall.Result, error) {
		if !forwarded.CompareAndSwap(false, true) {
			return toolcall.Result{}, errForwardedTwice
		}
		r.forwarded.Store(true)
		out := msg
		if !bytes.Equal(p, msg.Params) {
			raw, err := jsonrpc.SetMember(msg.Raw, "params", p)
			if err != nil {
				return toolcall.Result{}, fmt.Errorf("set params: %w", err)
			}
			m, perr := jsonrpc.Parse(raw)
			if perr != nil {
				return toolcall.Result{}, fmt.Errorf("rebuild request: %w", perr)
			}
			out = m
		}
		reply, err := s.roundTrip(fctx, r, out, s.sendOptions(hdr, out))
		if err != nil {
			return toolcall.Result{}, err
		}
		upstreamFrame = reply
		return toolcall.Result{Result: reply.Result, Error: reply.Error}, nil
	}

	res, err := s.p.interceptor.InterceptToolCall(ctx, call, forward)

	s.mu.Lock()
	if cur := s.pending[key]; cur == r {
		s.deleteLocked(key, r)
	}
	cancelled := r.cancelled
	s.mu.Unlock()
	if cancelled {
		return // the agent withdrew the request: it expects no answer
	}
	var resp *jsonrpc.Message
	switch {
	case err != nil:
		resp = jsonrpc.NewErrorResponse(r.agentID, s.upstreamError(err))
	case upstreamFrame != nil && sameResult(res, upstreamFrame):
		resp = upstreamFrame // byte for byte what the upstream said
		if s.shared {
			if resp, err = jsonrpc.WithID(upstreamFrame, r.agentID); err != nil {
				resp = jsonrpc.NewErrorResponse(r.agentID, jsonrpc.Errorf(jsonrpc.CodeInternalError, "restore request id: %v", err))
			}
		}
	case res.Error != nil:
		resp = jsonrpc.NewErrorResponse(r.agentID, res.Error)
	default:
		resp = jsonrpc.NewResponse(r.agentID, res.Result)
	}
	s.answer(r.out, resp)
}

func sameResult(res toolcall.Result, frame *jsonrpc.Message) bool {
	if res.Error != nil || frame.Error != nil {
		return res.Error == frame.Error
	}
	return bytes.Equal(res.Result, frame.Result)
}

// roundTrip sends a request that r tracks and waits for its answer. The
// call timeout is an idle timeout: any frame the upstream sends for the
// request (progress) restarts it.
func (s *Session) roundTrip(ctx context.Context, r *request, msg *jsonrpc.Message, opts upstream.SendOptions) (*jsonrpc.Message, error) {
	if err := s.conn.Send(ctx, msg, opts); err != nil {
		if notSent(err) {
			return nil, fmt.Errorf("%w: %w", toolcall.ErrNotSent, err)
		}
		return nil, err
	}
	var timeout <-chan time.Time
	var timer *time.Timer
	if d := s.p.opts.CallTimeout; d > 0 {
		timer = time.NewTimer(d)
		defer timer.Stop()
		timeout = timer.C
	}
	for {
		select {
		case rep := <-r.waiter:
			if rep.err != nil {
				return nil, rep.err
			}
			return rep.msg, nil
		case <-r.activity:
			if timer != nil {
				timer.Reset(s.p.opts.CallTimeout)
			}
		case <-timeout:
			return nil, fmt.Errorf("%w (%s)", errCallTimeout, s.p.opts.CallTimeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Call sends a request of the proxy's own (a compensation, a capture, a
// tools/list) on this session's upstream connection and waits for the
// answer. Its id is in a namespace agents do not use.
func (s *Session) Call(ctx context.Context, method string, params json.RawMessage) (toolcall.Result, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return toolcall.Result{}, errSessionFinished
	}
	if s.stateless {
		var err error
		if params, err = statelessMeta(params); err != nil {
			s.mu.Unlock()
			return toolcall.Result{}, fmt.Errorf("%w: params of %s: %w", toolcall.ErrNotSent, method, err)
		}
	}
	s.nextID++
	var id json.RawMessage
	if s.shared {
		id = json.RawMessage(strconv.FormatInt(s.nextID, 10))
	} else {
		id, _ = jsonrpc.Marshal("agenthelm-" + strconv.FormatInt(s.nextID, 10))
	}
	r := &request{upID: id, method: method, own: true,
		waiter: make(chan upstreamReply, 1), activity: make(chan struct{}, 1)}
	key := jsonrpc.IDKey(id)
	s.pending[key] = r
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.pending[key] == r {
			s.deleteLocked(key, r)
		}
		s.mu.Unlock()
	}()
	reply, err := s.roundTrip(ctx, r, jsonrpc.NewRequest(id, method, params), upstream.SendOptions{})
	if err != nil {
		return toolcall.Result{}, err
	}
	return toolcall.Result{Result: reply.Result, Error: reply.Error}, nil
}

func headerOrMeta(hdr http.Header, params json.RawMessage) string {
	if meta := jsonrpc.Member(params, "_meta"); meta != nil {
		var v string
		if json.Unmarshal(jsonrpc.Member(meta, "io.modelcontextprotocol/protocolVersion"), &v) == nil && v != "" {
			return v
		}
	}
	if hdr != nil {
		return hdr.Get("Mcp-Protocol-Version")
	}
	return ""
}

// metaClientInfo reads the client's self-description that stateless
// (2026-07-28) requests carry in _meta.
func metaClientInfo(params json.RawMessage) toolcall.ClientInfo {
	var ci toolcall.ClientInfo
	if meta := jsonrpc.Member(params, "_meta"); meta != nil {
		_ = json.Unmarshal(jsonrpc.Member(meta, "io.modelcontextprotocol/clientInfo"), &ci)
	}
	return ci
}

// canRequestInput reports whether a tools/call may be answered
// input_required: its protocol revision has multi round-trip requests
// (2026-07-28 on) and the request's _meta declares elicitation among the
// client's capabilities.
func canRequestInput(protocolVersion string, params json.RawMessage) bool {
	if protocolVersion < "2026-07-28" {
		return false
	}
	caps := jsonrpc.Member(jsonrpc.Member(params, "_meta"), "io.modelcontextprotocol/clientCapabilities")
	el := jsonrpc.Member(caps, "elicitation")
	return el != nil && string(el) != "null"
}

// notSent reports whether a Send error proves the frame never reached the
// upstream: the connection was already gone, or refused.
func notSent(err error) bool {
	return errors.Is(err, upstream.ErrClosed) || errors.Is(err, upstream.ErrExited) ||
		errors.Is(err, upstream.ErrSessionExpired) || errors.Is(err, syscall.ECONNREFUSED)
}

// selectedHeaders copies the headers the rest of agenthelm may look at
// (never credentials) into the call.
func (p *Proxy) selectedHeaders(hdr http.Header) map[string]string {
	if hdr == nil {
		return nil
	}
	var out map[string]string
	for _, name := range append([]string{"X-Agenthelm-Saga", "Traceparent", "Tracestate"}, p.opts.CallHeaders...) {
		if v := hdr.Get(name); v != "" {
			if out == nil {
				out = map[string]string{}
			}
			out[http.CanonicalHeaderKey(name)] = v
		}
	}
	return out
}

type callParams struct {
	Name      string
	Arguments json.RawMessage
}

// toolCallParams reads a tools/call's name and arguments the way every
// server will: a member present twice, or also in another case, is refused
// (encoding/json matches names case-insensitively and keeps the last, Node
// keeps the last exact one), so a policy never sees another tool or other
// arguments than the server runs.
func toolCallParams(params json.RawMessage) (callParams, *jsonrpc.Error) {
	var p callParams
	invalid := func(format string, args ...any) (callParams, *jsonrpc.Error) {
		return p, jsonrpc.Errorf(jsonrpc.CodeInvalidParams, "invalid params: "+format, args...)
	}
	vals, err := jsonrpc.LookupAll(params, "name", "arguments", "_meta")
	if err != nil {
		// Which member is ambiguous is in the error.
		return invalid("tools/call params: %v", err)
	}
	name := vals[0]
	if name == nil || json.Unmarshal(name, &p.Name) != nil || p.Name == "" {
		return invalid("tools/call needs a \"name\" string")
	}
	p.Arguments = vals[1]
	return p, nil
}
