package engine

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/agenthelm/agenthelm/approvals"
	"github.com/agenthelm/agenthelm/policy"
	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
	"github.com/agenthelm/agenthelm/saga"
	"github.com/agenthelm/agenthelm/toolcall"
)

// Approval inside a 2026-07-28 client (rule 23). That revision has no
// server-to-client requests: a held call is answered at once with
//
//	{"resultType": "input_required",
//	 "inputRequests": {"agenthelm_approval": {"method": "elicitation/create", "params": {...}}},
//	 "requestState": "ah1.<payload>.<mac>"}
//
// and the client, once its user has answered, sends the call again under a
// new JSON-RPC id with params.inputResponses and the requestState. Between
// the two the approval is pending like any other (CLI, admin API, web
// page, webhook); the first decision wins.
//
// The request state travels through the client, so it is treated as
// attacker-controlled: it is MACed with a key that never leaves this
// process, names the approval, the saga, a digest of the call (upstream,
// tool, arguments) and of the principal it was issued to, and expires with
// the approval. It is single-use: the first retry that presents it claims
// the approval; any later one is refused. A state issued before a restart
// no longer verifies, and its approval is gone with the process too.

// approvalInputKey names agenthelm's input request in inputRequests and
// inputResponses.
const approvalInputKey = "agenthelm_approval"

// statePrefix marks request states agenthelm issued. A state without it
// belongs to the upstream (its own multi round-trip request) and is
// forwarded untouched.
const statePrefix = "ah1."

// requestState is what a request state carries.
type requestState struct {
	Approval  string `json:"a"`
	Saga      string `json:"s"`
	Call      string `json:"c"` // callDigest
	Principal string `json:"p"` // digest of principalOf
	Expires   int64  `json:"e"` // unix milliseconds
	Nonce     string `json:"n"`
}

// resumption is the retry of a call answered input_required.
type resumption struct {
	state  requestState
	answer json.RawMessage // inputResponses.agenthelm_approval, nil if absent
}

// heldApproval is an approval whose call was answered input_required: its
// decision waits here for the retry that claims it.
type heldApproval struct {
	req     approvals.Request
	decided chan struct{} // closed when dec and err are set
	dec     approvals.Decision
	err     error
	claimed chan struct{} // closed by the retry that claims it
	// taken and closed are guarded by Engine.mu: a retry claimed it, or
	// nobody did in time and the approval is settled without one.
	taken, closed bool
}

// inputRequired builds the input_required answer for a held call and the
// state its retry must present.
func (e *Engine) inputRequired(req approvals.Request, principal string, call *toolcall.Call, digest string) toolcall.Result {
	var nonce [12]byte
	_, _ = rand.Read(nonce[:])
	st := requestState{
		Approval: req.ID, Saga: req.Saga, Call: callDigest(call, digest), Principal: sum(principal),
		Expires: req.Expires.UnixMilli(), Nonce: base64.RawURLEncoding.EncodeToString(nonce[:]),
	}
	b, _ := jsonrpc.Marshal(map[string]any{
		"resultType": "input_required",
		"inputRequests": map[string]any{
			approvalInputKey: map[string]any{"method": "elicitation/create", "params": approvalQuestion(req)},
		},
		"requestState": e.seal(st),
		"_meta":        map[string]any{"io.agenthelm/approval": req.ID},
	})
	return toolcall.Result{Result: b}
}

// seal encodes st with its MAC.
func (e *Engine) seal(st requestState) string {
	payload, _ := json.Marshal(st)
	body := statePrefix + base64.RawURLEncoding.EncodeToString(payload)
	return body + "." + base64.RawURLEncoding.EncodeToString(e.mac(body))
}

func (e *Engine) mac(body string) []byte {
	m := hmac.New(sha256.New, e.stateKey)
	m.Write([]byte(body))
	return m.Sum(nil)
}

// unseal checks a request state's MAC and expiry and decodes it.
func (e *Engine) unseal(s string) (requestState, error) {
	var st requestState
	i := strings.LastIndexByte(s, '.')
	if i <= len(statePrefix) {
		return st, errors.New("it is malformed")
	}
	body, tag := s[:i], s[i+1:]
	got, err := base64.RawURLEncoding.DecodeString(tag)
	if err != nil || !hmac.Equal(got, e.mac(body)) {
		return st, errors.New("it was not issued by this agenthelm process (altered, or issued before a restart)")
	}
	payload, err := base64.RawURLEncoding.DecodeString(body[len(statePrefix):])
	if err != nil || json.Unmarshal(payload, &st) != nil {
		return st, errors.New("it is malformed")
	}
	if exp := time.UnixMilli(st.Expires); !e.opts.Now().Before(exp) {
		return st, fmt.Errorf("it expired at %s", exp.UTC().Format(time.RFC3339))
	}
	return st, nil
}

// takeRequestState finds agenthelm's request state in a tools/call and,
// when there is one, removes it and the input responses from the params
// (they are agenthelm's, not the upstream's). It returns nil for a call
// that carries none, or the upstream's own. An error means the call
// carried a state of agenthelm's that does not verify: it is refused.
func (e *Engine) takeRequestState(call *toolcall.Call) (*resumption, error) {
	vals, err := jsonrpc.LookupAll(call.Params, "requestState", "inputResponses")
	if err != nil || vals[0] == nil {
		return nil, nil
	}
	var s string
	if json.Unmarshal(vals[0], &s) != nil || !strings.HasPrefix(s, statePrefix) {
		return nil, nil
	}
	st, err := e.unseal(s)
	if err != nil {
		return nil, fmt.Errorf("its requestState is not valid: %w", err)
	}
	params, err := jsonrpc.DeleteMembers(call.Params, "requestState", "inputResponses")
	if err != nil {
		return nil, fmt.Errorf("its params do not parse: %w", err)
	}
	call.Params = params
	return &resumption{state: st, answer: jsonrpc.Member(vals[1], approvalInputKey)}, nil
}

// resumeHeld handles the retry of a held call: it checks that the state
// was issued for this saga, call and principal, claims the approval (once),
// records the client's answer as a decision, and waits for the decision if
// the client gave none (its user dismissed the question): out-of-band
// approvers may still decide.
func (e *Engine) resumeHeld(ctx context.Context, l *live, call *toolcall.Call, in policy.Input, res gateResult, r *resumption, digest string) gateResult {
	st := r.state
	switch {
	case st.Saga != l.id():
		res.refuse = "agenthelm denied this call: its requestState belongs to saga " + st.Saga
		return res
	case st.Call != callDigest(call, digest):
		res.refuse = "agenthelm denied this call: its requestState was issued for a different call (the tool or its arguments changed); send the call again without it to ask for a new approval"
		return res
	case st.Principal != sum(principalOf(in, call)):
		res.refuse = "agenthelm denied this call: its requestState was issued to another agent"
		return res
	}
	h, err := e.claim(st.Approval)
	if err != nil {
		res.refuse = "agenthelm denied this call: " + err.Error()
		return res
	}
	if r.answer != nil {
		e.takeAnswer(call, h.req, r.answer)
	}
	keepAlive := e.keepAlive(ctx, call, h.req)
	tick := time.NewTicker(e.opts.Approvals.KeepAliveEvery())
	defer tick.Stop()
	for waiting := true; waiting; {
		select {
		case <-h.decided:
			waiting = false
		case <-tick.C:
			if keepAlive != nil {
				keepAlive()
			}
		case <-ctx.Done():
			_, _ = e.opts.Approvals.Decide(h.req.ID, false, "agent", "the agent withdrew the call: "+ctx.Err().Error())
			<-h.decided
			waiting = false
		}
	}
	return e.settle(res, h.req, h.dec, h.err, digest)
}

// claim takes the approval a request state names, once.
func (e *Engine) claim(id string) (*heldApproval, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	h := e.held[id]
	switch {
	case h == nil || h.closed:
		return nil, fmt.Errorf("approval %s is no longer pending (it was settled without the client, or agenthelm restarted); send the call again without requestState to ask for a new approval", id)
	case h.taken:
		return nil, fmt.Errorf("approval %s was already used: a request state is good for one retry", id)
	}
	h.taken = true
	close(h.claimed)
	return h, nil
}

// detach keeps a call answered input_required pending: its approval is
// decided out of band or by the client's retry, and if no retry comes for
// it before it expires, the decision is journaled without one (a rejection
// as a denied step, which may unwind the saga). Until then the saga counts
// the call as in flight, so it neither commits when idle nor unwinds past
// it.
func (e *Engine) detach(l *live, call *toolcall.Call, intent *saga.Intent, req approvals.Request) {
	h := &heldApproval{req: req, decided: make(chan struct{}), claimed: make(chan struct{})}
	e.mu.Lock()
	if e.held == nil {
		e.held = map[string]*heldApproval{}
	}
	e.held[req.ID] = h
	e.wg.Add(1)
	e.use(l) // released when the approval is settled
	e.mu.Unlock()
	l.inflight.Add(1)
	done := sync1(func() {
		l.inflight.Done()
		e.armIdle(l)
	})
	go e.awaitDetached(l, call, intent, h, done)
}

func (e *Engine) awaitDetached(l *live, call *toolcall.Call, intent *saga.Intent, h *heldApproval, done func()) {
	defer e.wg.Done()
	defer e.release(l)
	defer done()
	dec, err := e.opts.Approvals.Wait(e.ctx, h.req.ID, nil)
	h.dec, h.err = dec, err
	close(h.decided)
	e.opts.Tracer.Metrics().ApprovalResolved(e.ctx, approvalResult(dec, err), e.opts.Now().Sub(h.req.Created))
	if err != nil || !dec.Approved {
		// Refused: the call will not become a step, so the saga need not
		// count it in flight while its client may still come back for the
		// answer (an unwinding waits for calls in flight).
		done()
	}

	// The client may still come back for the decision until the request
	// state expires.
	wait := time.NewTimer(max(h.req.Expires.Sub(e.opts.Now()), 0))
	defer wait.Stop()
	select {
	case <-h.claimed:
		return // the retry journals the decision
	case <-wait.C:
	case <-e.ctx.Done():
	}
	e.mu.Lock()
	if h.taken {
		e.mu.Unlock()
		return
	}
	h.closed = true
	delete(e.held, h.req.ID)
	e.mu.Unlock()

	ctx := context.WithoutCancel(e.ctx)
	if err != nil {
		err = errors.New("agenthelm shut down before the client came back")
	}
	g := e.settle(gateResult{decisionID: intent.DecisionID}, h.req, dec, err, h.req.ArgsDigest)
	if g.refuse == "" || e.ctx.Err() != nil {
		// Approved, but the client never sent the call again: nothing was
		// forwarded. Or agenthelm is stopping: only the decision is kept.
		unused := note(h.req.Step, map[string]string{"type": "approval_unused", "id": h.req.ID,
			"reason": "the client did not send the call again before its request state expired"})
		l.mu.Lock()
		if rerr := e.record(ctx, l, append(g.notes, unused)...); rerr != nil {
			e.log.Error("approval outcome not journaled", "saga", l.s.ID, "approval", h.req.ID, "err", rerr)
		}
		l.mu.Unlock()
		e.log.Info("approval not used: the client did not retry the call", "saga", h.req.Saga, "approval", h.req.ID, "approved", dec.Approved)
		return
	}
	_, _ = e.refuse(ctx, l, call, intent, g, done)
}

// callDigest identifies a call for a request state: the upstream, the
// tool and the digest of its arguments.
func callDigest(call *toolcall.Call, argsDigest string) string {
	return sum(call.Upstream + "\x00" + call.Tool + "\x00" + argsDigest)
}

// principalOf is who a request state is issued to: the agent identity the
// policy saw and the MCP session, if any.
func principalOf(in policy.Input, call *toolcall.Call) string {
	return string(in.Agent.Source) + "\x00" + in.Agent.ID + "\x00" + call.Transport.SessionID
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:16])
}
