package httptool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
	"github.com/agenthelm/agenthelm/toolcall"
)

// errResponseTooLarge: the upstream answered, but with more than
// limits.max_body_bytes; the call may have run (in doubt).
var errResponseTooLarge = errors.New("the upstream's response body is larger than limits.max_body_bytes")

// toolCallSkips are agent headers a routed request does not pass on:
// Accept-Encoding, so that the upstream answers with a body agenthelm can
// read for the journal and compensations (the agent still gets the body
// byte for byte, uncompressed).
var toolCallSkips = map[string]bool{"Accept-Encoding": true}

// prepare fills req with the agent's request re-addressed to the upstream:
// its method, path and query exactly as sent, the agent's headers minus
// hop-by-hop ones and credentials (and skip), then the upstream's
// configured headers over them. The caller sets the body.
func (p *Proxy) prepare(req *fasthttp.Request, rq *request, agent *fasthttp.Request, skip map[string]bool) {
	req.Header.SetMethod(rq.method)
	copyRequestHeaders(&req.Header, &agent.Header, skip)
	for k, v := range rq.up.headers {
		req.Header.Set(k, v)
	}
	setURI(req, rq.up, rq.path, rq.query)
}

// setURI addresses req to the upstream's base URL joined with path (as
// given, never normalized) and the query, after the base URL's own.
func setURI(req *fasthttp.Request, t *target, path, query string) {
	u := req.URI()
	u.DisablePathNormalizing = true
	u.SetScheme(t.scheme)
	u.SetHost(t.host)
	u.SetPath(t.path + path)
	q := t.query
	if query != "" {
		if q != "" {
			q += "&"
		}
		q += query
	}
	u.SetQueryString(q)
}

// roundTrip sends req to the upstream and reads its answer into resp,
// waiting at most the call timeout or until ctx ends. When ctx ends first
// it returns at once with owned false: the request is still being sent,
// and req and resp are released when it ends. Otherwise the caller owns
// req and resp again. Errors wrap toolcall.ErrNotSent when nothing was
// sent, toolcall.ErrTimeout when no answer came in time, and otherwise
// leave the call in doubt. The caller is counted in p.inflight.
func (p *Proxy) roundTrip(ctx context.Context, t *target, req *fasthttp.Request, resp *fasthttp.Response) (owned bool, err error) {
	deadline := time.Now().Add(p.opts.CallTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	done := make(chan error)
	abandon := make(chan struct{})
	p.inflight.Add(1)
	go func() {
		defer p.inflight.Done()
		err := t.client.DoDeadline(req, resp, deadline)
		select {
		case done <- err:
		case <-abandon:
			fasthttp.ReleaseRequest(req)
			fasthttp.ReleaseResponse(resp)
		}
	}()
	select {
	case err := <-done:
		return true, sendError(t.name, err)
	case <-ctx.Done():
		close(abandon)
		return false, fmt.Errorf("upstream %s: %w", t.name, ctx.Err())
	}
}

// sendError says what a failed send means for the call.
func sendError(upstream string, err error) error {
	var notSent notSentError
	var ne net.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &notSent), errors.Is(err, fasthttp.ErrNoFreeConns):
		return fmt.Errorf("%w: upstream %s: %w", toolcall.ErrNotSent, upstream, err)
	case errors.Is(err, fasthttp.ErrTimeout), errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("upstream %s: %w", upstream, toolcall.ErrTimeout)
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return fmt.Errorf("upstream %s: %w", upstream, errResponseTooLarge)
	}
	return fmt.Errorf("upstream %s: %w (the request may have reached it)", upstream, err)
}

// response is the structuredContent of a REST call's result: what a
// route's compensation sees as .response.
type response struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
}

type textItem struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type toolResult struct {
	Content           []textItem `json:"content"`
	StructuredContent response   `json:"structuredContent"`
	IsError           bool       `json:"isError"`
}

// resultOf turns an upstream's response into the tool result the engine
// journals: the body as text, and {status, headers, body} with the body
// decoded when it is JSON; isError for a status of 400 or more.
func resultOf(resp *fasthttp.Response) toolcall.Result {
	body := resp.Body()
	r := toolResult{
		StructuredContent: response{Status: resp.StatusCode(), Headers: responseHeaders(&resp.Header), Body: json.RawMessage("null")},
		IsError:           resp.StatusCode() >= 400,
	}
	text := string(body)
	switch enc := string(resp.Header.ContentEncoding()); {
	case enc != "" && !strings.EqualFold(enc, "identity"):
		text = fmt.Sprintf("(%d bytes, Content-Encoding %s)", len(body), enc)
	case len(body) == 0:
	case isJSON(resp.Header.ContentType()):
		// Encoding checks it (no separate pass over the body).
		r.StructuredContent.Body = body
	default:
		r.StructuredContent.Body, _ = jsonrpc.Marshal(text)
	}
	if !utf8.ValidString(text) {
		text = fmt.Sprintf("(%d bytes, not UTF-8 text)", len(body))
	}
	r.Content = []textItem{{Type: "text", Text: text}}
	b, err := jsonrpc.Marshal(r)
	if err != nil {
		// Declared JSON, but it is not: the body goes in as a string.
		r.StructuredContent.Body, _ = jsonrpc.Marshal(text)
		b, _ = jsonrpc.Marshal(r)
	}
	return toolcall.Result{Result: b}
}

// isJSON reports whether a Content-Type is JSON (application/json or a
// +json type).
func isJSON(ct []byte) bool {
	mt, _, _ := strings.Cut(string(ct), ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}
