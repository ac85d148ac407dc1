package httptool

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
	"github.com/agenthelm/agenthelm/toolcall"
)

// Problem codes: the "code" member of agenthelm's problem+json answers,
// which tells them apart where the status does not.
const (
	codeBadRequest       = "bad_request"         // 400: the request could not be read
	codeInvalidToken     = "invalid_token"       // 401: the bearer token did not verify
	codeHostNotAllowed   = "host_not_allowed"    // 403: Host or Origin is not this proxy's
	codeUnknownUpstream  = "unknown_upstream"    // 404: no REST upstream of that name
	codeNotAToolCall     = "not_a_tool_call"     // 403: an unrouted write
	codeBodyTooLarge     = "body_too_large"      // 413: request body above limits.max_body_bytes
	codeDenied           = "denied"              // 403: the policy denied the call
	codeRejected         = "approval_rejected"   // 403: an approver rejected it, or the approval expired
	codeSagaClosed       = "saga_closed"         // 409: the saga is aborting or finished
	codeUpstreamDown     = "upstream_down"       // 502: the request could not be sent
	codeUpstreamFailed   = "upstream_failed"     // 502: sent, but no usable answer (in doubt)
	codeResponseTooLarge = "response_too_large"  // 502: response body above limits.max_body_bytes
	codeUpstreamTimeout  = "upstream_timeout"    // 504: no answer within limits.call_timeout
	codeJournal          = "journal_unavailable" // 503: agenthelm could not journal the call
	codeShuttingDown     = "shutting_down"       // 503
	codeRefused          = "refused"             // 502: agenthelm refused the call for another reason
)

// problem is an RFC 9457 problem details object. Type is always
// about:blank (Title is then the status's phrase); Code says which
// problem it is.
type problem struct {
	Type      string          `json:"type"`
	Title     string          `json:"title"`
	Status    int             `json:"status"`
	Detail    string          `json:"detail,omitempty"`
	Code      string          `json:"code"`
	Upstream  string          `json:"upstream,omitempty"`
	Tool      string          `json:"tool,omitempty"`
	Saga      string          `json:"saga,omitempty"`
	Reasons   []string        `json:"reasons,omitempty"`
	Upstreams []string        `json:"upstreams,omitempty"`
	Rollback  json.RawMessage `json:"rollback,omitempty"`
}

// problem answers the agent with pr as application/problem+json.
func (p *Proxy) problem(rc *fasthttp.RequestCtx, pr problem) {
	pr.Type, pr.Title = "about:blank", http.StatusText(pr.Status)
	if pr.Upstreams == nil && pr.Code == codeUnknownUpstream {
		pr.Upstreams = []string{}
	}
	b, err := jsonrpc.Marshal(pr)
	if err != nil {
		b = []byte(`{"type":"about:blank","status":500,"code":"internal"}`)
	}
	rc.Response.Reset()
	rc.Response.SetStatusCode(pr.Status)
	rc.Response.Header.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	rc.Response.Header.SetContentType("application/problem+json")
	if pr.Saga != "" {
		rc.Response.Header.Set(hdrSaga, pr.Saga)
	}
	if pr.Rollback != nil {
		setRollbackHeader(&rc.Response.Header, pr.Rollback)
	}
	rc.Response.SetBody(b)
	p.closing(rc)
}

// forwardProblem describes a forward that got no usable answer.
func forwardProblem(err error, upstream, tool string) problem {
	pr := problem{Status: http.StatusBadGateway, Code: codeUpstreamFailed, Upstream: upstream, Tool: tool, Detail: err.Error()}
	switch {
	case errors.Is(err, toolcall.ErrTimeout):
		pr.Status, pr.Code = http.StatusGatewayTimeout, codeUpstreamTimeout
	case errors.Is(err, toolcall.ErrNotSent):
		pr.Code = codeUpstreamDown
	case errors.Is(err, errResponseTooLarge):
		pr.Code = codeResponseTooLarge
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		pr.Status, pr.Code = http.StatusServiceUnavailable, codeShuttingDown
	}
	return pr
}

// engineProblem describes an answer the engine gave without a usable
// upstream response: a refusal (a tool error result marked with
// toolcall.MetaRefused), or an error.
func engineProblem(res toolcall.Result, err error, x *exchange, call *toolcall.Call) problem {
	pr := problem{Upstream: call.Upstream, Tool: call.Tool, Saga: x.saga}
	switch {
	case err != nil:
		pr.Detail = err.Error()
		switch {
		case x.err != nil && errors.Is(err, x.err):
			// The engine returns a forward's error as it is.
			pr = forwardProblem(err, call.Upstream, call.Tool)
			pr.Saga = x.saga
		case errors.Is(err, toolcall.ErrNotJournaled):
			pr.Status, pr.Code = http.StatusServiceUnavailable, codeJournal
		case errors.Is(err, toolcall.ErrShuttingDown):
			pr.Status, pr.Code = http.StatusServiceUnavailable, codeShuttingDown
		default:
			pr.Status, pr.Code = http.StatusBadGateway, codeRefused
		}
		return pr
	case res.Error != nil:
		// A forward that failed and unwound the saga: the engine's error
		// carries the rollback in its data.
		pr.Detail = res.Error.Message
		pr.Rollback = jsonrpc.Member(res.Error.Data, metaRollback)
		pr.Status, pr.Code = http.StatusBadGateway, codeRefused
		if x.err != nil {
			f := forwardProblem(x.err, call.Upstream, call.Tool)
			pr.Status, pr.Code = f.Status, f.Code
		}
	default:
		pr.Detail = resultText(res.Result)
		meta := jsonrpc.Member(res.Result, "_meta")
		pr.Rollback = jsonrpc.Member(meta, metaRollback)
		var refused struct {
			Kind    string   `json:"kind"`
			Saga    string   `json:"saga"`
			Reasons []string `json:"reasons"`
		}
		_ = json.Unmarshal(jsonrpc.Member(meta, toolcall.MetaRefused), &refused)
		pr.Status, pr.Code = refusedStatus(refused.Kind)
		pr.Reasons = refused.Reasons
		if pr.Saga == "" {
			pr.Saga = refused.Saga
		}
	}
	if pr.Saga == "" {
		var rb struct {
			Saga string `json:"saga"`
		}
		if json.Unmarshal(pr.Rollback, &rb) == nil {
			pr.Saga = rb.Saga
		}
	}
	return pr
}

// refusedStatus maps the kind of an engine refusal to a status and code.
func refusedStatus(kind string) (int, string) {
	switch kind {
	case toolcall.RefusedDenied:
		return http.StatusForbidden, codeDenied
	case toolcall.RefusedApprovalRejected:
		return http.StatusForbidden, codeRejected
	case toolcall.RefusedSagaClosed:
		return http.StatusConflict, codeSagaClosed
	case toolcall.RefusedBadRequestState:
		return http.StatusBadRequest, codeBadRequest
	}
	return http.StatusBadGateway, codeRefused // capture failed, or unmarked
}

// resultText joins the text items of a tool result; the rollback summary
// the engine appends to a denial is left out (it is in Rollback).
func resultText(result json.RawMessage) string {
	var r struct {
		Content []struct{ Type, Text string } `json:"content"`
	}
	_ = json.Unmarshal(result, &r)
	var parts []string
	for _, c := range r.Content {
		if c.Type == "text" && !strings.HasPrefix(c.Text, "agenthelm rolled back saga") {
			parts = append(parts, c.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// setRollbackHeader sets X-AgentHelm-Rollback to the one-line summary of
// a rollback (its text), cut to a size every client reads.
func setRollbackHeader(h *fasthttp.ResponseHeader, rollback json.RawMessage) {
	var rb struct {
		Text string `json:"text"`
	}
	if json.Unmarshal(rollback, &rb) != nil || rb.Text == "" {
		return
	}
	h.Set(hdrRollback, oneLine(rb.Text, 2000))
}

// oneLine makes s a header value: control characters become spaces and
// it is cut at max bytes (on a character boundary).
func oneLine(s string, max int) string {
	b := []rune(s)
	out := make([]rune, 0, len(b))
	n := 0
	for _, r := range b {
		if r < 0x20 || r == 0x7f {
			r = ' '
		}
		w := len(string(r))
		if n+w > max-3 {
			return string(out) + "..."
		}
		out = append(out, r)
		n += w
	}
	return string(out)
}
