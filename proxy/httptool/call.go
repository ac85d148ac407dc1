package httptool

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync/atomic"

	"github.com/valyala/fasthttp"

	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
	"github.com/agenthelm/agenthelm/telemetry"
	"github.com/agenthelm/agenthelm/toolcall"
)

// Keys of params._meta that the proxy reads and writes (the engine sets
// the idempotency key; telemetry the trace context).
const (
	metaIdempotencyKey = "io.agenthelm/idempotency-key"
	metaRollback       = "io.agenthelm/rollback"
)

// traceKeys are the W3C trace context keys, unprefixed in _meta as in MCP,
// and the agent's headers they are read from.
var traceKeys = []struct{ meta, header string }{
	{"traceparent", hdrTraceparent}, {"tracestate", hdrTracestate}, {"baggage", hdrBaggage},
}

var errForwardedTwice = errors.New("a tool call can be forwarded only once")

// arguments are a routed call's arguments: the request as policy, the
// journal and compensations (.request) see it.
type arguments struct {
	Method string `json:"method"`
	// Path is the path after /<upstream>, as the agent sent it.
	Path string `json:"path"`
	// Params are the route's placeholders, as they appear in the path.
	Params map[string]string `json:"params"`
	// Query is the query string decoded, each name with all its values.
	Query map[string][]string `json:"query"`
	// Headers are selected request headers; never credentials.
	Headers map[string]string `json:"headers"`
	// Body is the JSON body decoded, else the body as a string; null if
	// there is none.
	Body json.RawMessage `json:"body"`
}

// newCall builds the tool call of a routed request.
func (p *Proxy) newCall(rc *fasthttp.RequestCtx, rq *request) *toolcall.Call {
	h := &rc.Request.Header
	args := arguments{Method: rq.method, Path: rq.path, Params: rq.params, Query: map[string][]string{},
		Headers: selectHeaders(h, p.argHeaders), Body: json.RawMessage("null")}
	if args.Headers == nil {
		args.Headers = map[string]string{}
	}
	// A malformed pair is left out here; the upstream gets the query as sent.
	q, _ := url.ParseQuery(rq.query)
	for k, v := range q {
		args.Query[k] = v
	}
	body := rc.Request.Body()
	if len(body) > 0 {
		args.Body = body
		if !isJSON(h.ContentType()) {
			args.Body, _ = jsonrpc.Marshal(string(body))
		}
	}
	// Encoding checks a JSON body (no separate pass over it).
	rawArgs, err := jsonrpc.Marshal(args)
	if err != nil {
		// Declared JSON, but it is not: it goes in as a string.
		args.Body, _ = jsonrpc.Marshal(string(body))
		rawArgs, _ = jsonrpc.Marshal(args)
	}
	meta := map[string]string{}
	for _, k := range traceKeys {
		if v := h.Peek(k.header); len(v) > 0 {
			meta[k.meta] = string(v)
		}
	}
	params, _ := jsonrpc.Marshal(callParams{Name: rq.route.Tool, Arguments: rawArgs, Meta: meta})
	call := &toolcall.Call{
		Upstream:  rq.up.name,
		Tool:      rq.route.Tool,
		Arguments: rawArgs,
		Params:    params,
		RequestID: newRequestID(),
		Transport: toolcall.Transport{
			Kind: "http", Protocol: "http", Method: rq.method, Path: rq.path,
			RemoteAddr: rc.RemoteAddr().String(),
			Headers:    selectHeaders(h, p.transportHeaders),
		},
		TokenSubject: rq.subject,
	}
	if len(args.Params) > 0 {
		call.Transport.Params = args.Params
	}
	if len(args.Query) > 0 {
		call.Transport.Query = args.Query
	}
	return call
}

// callParams are a routed call's params, as an MCP tools/call's.
type callParams struct {
	Name      string            `json:"name"`
	Arguments json.RawMessage   `json:"arguments"`
	Meta      map[string]string `json:"_meta,omitempty"`
}

// newRequestID names a routed call in traces (a JSON string; HTTP has no
// request id of its own).
func newRequestID() json.RawMessage {
	var b [8]byte
	_, _ = rand.Read(b[:])
	id, _ := jsonrpc.Marshal("http-" + hex.EncodeToString(b[:]))
	return id
}

// exchange is what the forward function of one call left behind: the
// upstream's response, if it answered, and the saga it joined.
type exchange struct {
	resp   *fasthttp.Response // nil unless the upstream answered
	result json.RawMessage    // what the forward returned for resp
	err    error              // the forward's error, if any
	saga   string
	// stage is waiting until the call is forwarded or its agent hangs up,
	// whichever comes first; the other then finds it taken.
	stage atomic.Int32
}

// Stages of an exchange.
const (
	stageWaiting int32 = iota
	stageForwarded
	stageHungUp
)

// errHungUp is the forward's error for a call whose agent closed its
// connection before the call was forwarded.
var errHungUp = fmt.Errorf("%w: the agent closed its connection before the call was forwarded", toolcall.ErrNotSent)

func (x *exchange) release() {
	if x.resp != nil {
		fasthttp.ReleaseResponse(x.resp)
		x.resp = nil
	}
}

// forward returns the Forward of a routed call: it sends the agent's
// request (its original body bytes) with the idempotency key and trace
// context from the params' _meta as headers, and keeps the response for
// the answer to the agent.
func (p *Proxy) forward(rc *fasthttp.RequestCtx, rq *request, x *exchange) toolcall.Forward {
	return func(ctx context.Context, params json.RawMessage) (toolcall.Result, error) {
		if !x.stage.CompareAndSwap(stageWaiting, stageForwarded) {
			if x.stage.Load() == stageHungUp {
				return toolcall.Result{}, errHungUp
			}
			return toolcall.Result{}, errForwardedTwice
		}
		x.saga, _, _ = telemetry.SagaFromContext(ctx)
		req := fasthttp.AcquireRequest()
		resp := fasthttp.AcquireResponse()
		p.prepare(req, rq, &rc.Request, toolCallSkips)
		var edited struct {
			Meta metaHeaders `json:"_meta"`
		}
		_ = json.Unmarshal(params, &edited)
		edited.Meta.set(req, false)
		req.SetBody(rc.Request.Body())
		owned, err := p.roundTrip(ctx, rq.up, req, resp)
		if !owned {
			x.err = err
			return toolcall.Result{}, err
		}
		fasthttp.ReleaseRequest(req)
		if err != nil {
			fasthttp.ReleaseResponse(resp)
			x.err = err
			return toolcall.Result{}, err
		}
		x.resp = resp
		res := resultOf(resp)
		x.result = res.Result
		return res, nil
	}
}

// metaHeaders are the _meta keys a request carries upstream as headers:
// the idempotency key the engine set and the trace context of the call's
// client span.
type metaHeaders struct {
	IdempotencyKey string `json:"io.agenthelm/idempotency-key"`
	Traceparent    string `json:"traceparent"`
	Tracestate     string `json:"tracestate"`
	Baggage        string `json:"baggage"`
}

// set sends them as headers. The idempotency key replaces one the request
// already has only when override is set: a routed call keeps the agent's
// own key, a compensation must use the engine's (rule 12).
func (m metaHeaders) set(req *fasthttp.Request, override bool) {
	if m.IdempotencyKey != "" && (override || len(req.Header.Peek(hdrIdempotencyKey)) == 0) {
		req.Header.Set(hdrIdempotencyKey, m.IdempotencyKey)
	}
	for _, h := range [][2]string{{hdrTraceparent, m.Traceparent}, {hdrTracestate, m.Tracestate}, {hdrBaggage, m.Baggage}} {
		if h[1] != "" {
			req.Header.Set(h[0], h[1])
		}
	}
}
