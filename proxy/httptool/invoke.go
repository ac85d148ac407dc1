package httptool

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/agenthelm/agenthelm/proxy/upstream"
	"github.com/agenthelm/agenthelm/toolcall"
)

// errClosed: Invoke after Close.
var errClosed = errors.New("the http tool proxy is closed")

// invokeArgs are the arguments of a request agenthelm builds: a route's
// compensation produces {method, path, body, headers}.
type invokeArgs struct {
	Method string `json:"method"`
	// Path starts with "/" and may carry a query after "?".
	Path string `json:"path"`
	// Query adds parameters, each a string or an array of strings.
	Query map[string]json.RawMessage `json:"query"`
	// Headers are extra request headers, each a string.
	Headers map[string]json.RawMessage `json:"headers"`
	// Body is sent as JSON; absent or null sends no body.
	Body json.RawMessage `json:"body"`
}

var upperMethod = regexp.MustCompile(`^[A-Z]+$`)

// Invoke sends a request agenthelm builds itself, a route's compensation,
// to REST upstream up and returns the response as a tool result (see
// resultOf). method must be "tools/call"; params are {name, arguments,
// _meta} with arguments {method, path, body, headers}; the idempotency
// key in _meta is sent as Idempotency-Key, and trace context as headers.
// session is unused: REST APIs have none. Errors are those of a forward
// (toolcall.ErrNotSent, toolcall.ErrTimeout, in doubt), and
// toolcall.ErrUnknownUpstream, or an error naming what is wrong with a
// request that cannot be sent.
func (p *Proxy) Invoke(ctx context.Context, up, session, method string, params json.RawMessage) (toolcall.Result, error) {
	t, ok := p.target(up)
	if !ok {
		return toolcall.Result{}, fmt.Errorf("%w: %s is not a REST upstream", toolcall.ErrUnknownUpstream, up)
	}
	if method != "tools/call" {
		return toolcall.Result{}, fmt.Errorf("REST upstream %s: agenthelm sends it only tools/call, not %s", up, method)
	}
	if !p.enter() {
		return toolcall.Result{}, fmt.Errorf("%w: %w", toolcall.ErrNotSent, errClosed)
	}
	defer p.inflight.Done()
	// Close cancels it too, once its grace is over.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(p.ctx, cancel)()
	req := fasthttp.AcquireRequest()
	if err := buildInvoke(req, t, params); err != nil {
		fasthttp.ReleaseRequest(req)
		return toolcall.Result{}, fmt.Errorf("request to REST upstream %s: %w", up, err)
	}
	resp := fasthttp.AcquireResponse()
	owned, err := p.roundTrip(ctx, t, req, resp)
	if !owned {
		return toolcall.Result{}, err
	}
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	if err != nil {
		return toolcall.Result{}, err
	}
	return resultOf(resp), nil
}

// buildInvoke fills req from a tools/call's params.
func buildInvoke(req *fasthttp.Request, t *target, params json.RawMessage) error {
	var in struct {
		Arguments json.RawMessage `json:"arguments"`
		Meta      metaHeaders     `json:"_meta"`
	}
	if err := json.Unmarshal(params, &in); err != nil {
		return fmt.Errorf("params: %w", err)
	}
	var a invokeArgs
	args := in.Arguments
	if args == nil {
		return errors.New("no arguments: want {method, path, body, headers}")
	}
	if err := json.Unmarshal(args, &a); err != nil {
		return fmt.Errorf("arguments %s: want {method, path, body, headers}: %w", short(args), err)
	}
	if !upperMethod.MatchString(a.Method) {
		return fmt.Errorf("method %q: want an HTTP method in upper case, such as POST", a.Method)
	}
	path, query, _ := strings.Cut(a.Path, "?")
	if !strings.HasPrefix(path, "/") || strings.ContainsAny(a.Path, " #\t\r\n\x00") {
		return fmt.Errorf("path %q: want a path that starts with /, without spaces or fragment", a.Path)
	}
	if len(a.Query) > 0 {
		q, err := queryValues(a.Query)
		if err != nil {
			return err
		}
		if query != "" {
			query += "&"
		}
		query += q.Encode()
	}
	req.Header.SetMethod(a.Method)
	for k, v := range t.headers {
		req.Header.Set(k, v)
	}
	for name, raw := range a.Headers {
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("headers.%s is %s: want a string", name, short(raw))
		}
		if !validHeader(name, v) {
			return fmt.Errorf("headers.%s: not a valid header name and value", name)
		}
		req.Header.Set(name, v)
	}
	if body := bytes.TrimSpace(a.Body); len(body) > 0 && !bytes.Equal(body, []byte("null")) {
		var buf bytes.Buffer
		if err := json.Compact(&buf, body); err != nil {
			return fmt.Errorf("body: %w", err)
		}
		if len(req.Header.ContentType()) == 0 {
			req.Header.SetContentType("application/json")
		}
		req.SetBody(buf.Bytes())
	}
	// The engine's key wins over a configured header of the same name: it
	// must be the one derived from the saga and step (rule 12).
	in.Meta.set(req, true)
	setURI(req, t, path, query)
	return nil
}

// queryValues reads a query object whose values are strings or arrays of
// strings.
func queryValues(m map[string]json.RawMessage) (url.Values, error) {
	q := url.Values{}
	for k, raw := range m {
		var one string
		if json.Unmarshal(raw, &one) == nil {
			q.Add(k, one)
			continue
		}
		var many []string
		if err := json.Unmarshal(raw, &many); err != nil {
			return nil, fmt.Errorf("query.%s is %s: want a string or an array of strings", k, short(raw))
		}
		q[k] = append(q[k], many...)
	}
	return q, nil
}

func validHeader(name, value string) bool {
	if name == "" || strings.ContainsAny(value, "\r\n\x00") {
		return false
	}
	for _, c := range name {
		if c <= ' ' || c >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, c) {
			return false
		}
	}
	return true
}

// short abbreviates a JSON value for error messages.
func short(raw json.RawMessage) string {
	s := string(raw)
	if r := []rune(s); len(r) > 80 {
		s = string(r[:77]) + "..."
	}
	return s
}

// InvokeSpec is Invoke for an upstream the journal recorded (rule 29):
// spec.Transport "http" and spec.URL its base URL. A configured upstream
// of that name wins; otherwise the API is reached at the recorded URL
// without configured headers (their values are never journaled).
func (p *Proxy) InvokeSpec(ctx context.Context, spec upstream.Spec, envNames []string, method string, params json.RawMessage) (toolcall.Result, error) {
	if spec.Transport != "http" {
		return toolcall.Result{}, fmt.Errorf("%w: %s was recorded with transport %q, not a REST API", toolcall.ErrUnknownUpstream, spec.Name, spec.Transport)
	}
	if !p.Has(spec.Name) {
		t, err := p.newTarget(spec.Name, Upstream{URL: spec.URL})
		if err != nil {
			return toolcall.Result{}, fmt.Errorf("%w: %w", toolcall.ErrNotSent, err)
		}
		t.recorded = true
		p.mu.Lock()
		if _, ok := p.ups[spec.Name]; !ok {
			p.ups[spec.Name] = t
		}
		p.mu.Unlock()
		p.log.Warn("REST upstream not in the configuration: reaching it at the URL the journal recorded, without configured headers",
			"upstream", spec.Name, "url", spec.URL)
	}
	return p.Invoke(ctx, spec.Name, "", method, params)
}
