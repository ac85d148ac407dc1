package httptool

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"

	"github.com/valyala/fasthttp"

	"github.com/agenthelm/agenthelm/toolcall"
)

// toolCall runs a routed request through the interceptor and answers the
// agent with what it decided.
func (p *Proxy) toolCall(rc *fasthttp.RequestCtx, rq *request) {
	call := p.newCall(rc, rq)
	x := &exchange{}
	defer x.release()
	// fasthttp's RequestCtx ends only at shutdown; p.ctx ends when Close
	// gives up waiting. An agent that hangs up before its call is
	// forwarded (while it waits for approval, say) ends the call, as a
	// closed stream does on the MCP side; once forwarded, the call runs to
	// its outcome so that the journal records what the upstream did.
	ctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	stop := watchHangup(rc.Conn(), func() bool { return x.stage.Load() == stageWaiting }, func() {
		if x.stage.CompareAndSwap(stageWaiting, stageHungUp) {
			p.log.Info("agent closed its connection before its call was forwarded; the call is withdrawn",
				"upstream", call.Upstream, "tool", call.Tool, "remote", call.Transport.RemoteAddr)
			cancel()
		}
	})
	defer stop()
	res, err := p.ic.InterceptToolCall(ctx, call, p.forward(rc, rq, x))
	p.render(rc, call, res, err, x)
}

// render answers the agent. When the upstream answered and the engine's
// answer is that answer (perhaps with a rollback summary added, for a
// failure that unwound the saga), the agent gets the upstream's response
// byte for byte, with X-AgentHelm-Saga and, after a rollback,
// X-AgentHelm-Rollback. Anything else the engine answered instead of the
// upstream (a denial, a refusal, an error) becomes a problem+json.
func (p *Proxy) render(rc *fasthttp.RequestCtx, call *toolcall.Call, res toolcall.Result, err error, x *exchange) {
	if err == nil && x.resp != nil && res.Error == nil {
		rb, same := json.RawMessage(nil), bytes.Equal(res.Result, x.result)
		if !same {
			rb, same = sameResponse(res.Result, x.resp.StatusCode())
		}
		if same {
			p.relay(rc, x.resp)
			if x.saga != "" {
				rc.Response.Header.Set(hdrSaga, x.saga)
			}
			if rb != nil {
				setRollbackHeader(&rc.Response.Header, rb)
			}
			return
		}
	}
	if err == nil && res.Error == nil && !res.IsToolError() {
		// A result of agenthelm's own that is not an error (routes cannot
		// name control tools, so this is not expected): give it as JSON.
		rc.Response.SetStatusCode(http.StatusOK)
		rc.Response.Header.SetContentType("application/json")
		rc.Response.SetBody(res.Result)
		return
	}
	pr := engineProblem(res, err, x, call)
	if pr.Code == codeUpstreamFailed || pr.Code == codeUpstreamDown || pr.Code == codeUpstreamTimeout {
		p.log.Info("routed call got no answer", "upstream", call.Upstream, "tool", call.Tool, "err", pr.Detail)
	}
	p.problem(rc, pr)
}

// sameResponse reports whether a result is the upstream's answer as the
// forward returned it (it has the structuredContent the forward built,
// with the upstream's status), and returns the rollback the engine added
// to it, if any.
func sameResponse(result json.RawMessage, status int) (rollback json.RawMessage, same bool) {
	var r struct {
		StructuredContent *struct {
			Status int `json:"status"`
		} `json:"structuredContent"`
		Meta struct {
			Rollback json.RawMessage `json:"io.agenthelm/rollback"`
		} `json:"_meta"`
	}
	if json.Unmarshal(result, &r) != nil || r.StructuredContent == nil || r.StructuredContent.Status != status {
		return nil, false
	}
	return r.Meta.Rollback, true
}
