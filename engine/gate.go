package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/agenthelm/agenthelm/approvals"
	"github.com/agenthelm/agenthelm/policy"
	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
	"github.com/agenthelm/agenthelm/saga"
	"github.com/agenthelm/agenthelm/telemetry"
	"github.com/agenthelm/agenthelm/toolcall"
)

// gateResult is what the policy (and, for a held call, a person) decided.
type gateResult struct {
	decisionID string
	// notes are journaled with the step's intent: the decision (rule 20)
	// and the approval (rule 22), before anything is forwarded.
	notes []saga.Event
	// refuse, when set, is why the call is not forwarded.
	refuse   string
	rejected bool     // refused by a person or by expiry, not by the policy
	reasons  []string // the policy's reasons, or the approver's
	// input, when set, is the answer to a call held for approval whose
	// client will ask its user and retry (input_required); held is the
	// pending approval that retry comes back for.
	input *toolcall.Result
	held  *approvals.Request
	// approved is the approval that let the call through, if a person
	// (or a carried approval) did.
	approved *approvals.Request
	by       string // who approved it
}

// Note bodies (saga.EvNote). Their "type" names them in the journal.
type decisionNote struct {
	Type       string            `json:"type"` // "decision"
	ID         string            `json:"id"`
	Revision   string            `json:"revision"`
	Verdict    string            `json:"verdict"`
	Reasons    []string          `json:"reasons,omitempty"`
	Approvers  []string          `json:"approvers,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	DryRun     bool              `json:"dry_run,omitempty"`
	Error      string            `json:"error,omitempty"`
	DurationUS int64             `json:"duration_us"`
}

type approvalNote struct {
	Type     string              `json:"type"` // "approval_requested" | "approval_decided"
	Request  *approvals.Request  `json:"request,omitempty"`
	Decision *approvals.Decision `json:"decision,omitempty"`
	ID       string              `json:"id"`
}

func note(step int, body any) saga.Event {
	b, _ := json.Marshal(body)
	return saga.Event{Kind: saga.EvNote, Step: step, Note: b}
}

// gate asks the policy about a call that would become step n, and holds it
// for approval when the policy says so.
func (e *Engine) gate(ctx context.Context, l *live, call *toolcall.Call, rule Rule, n int, digest string, resume *resumption) gateResult {
	if e.opts.Gate == nil {
		return gateResult{}
	}
	in := e.policyInput(l, call, rule)
	pctx, span := e.opts.Tracer.StartInternal(ctx, telemetry.SpanPolicyEvaluate)
	d := e.opts.Gate.Decide(pctx, in)
	span.SetAttributes(telemetry.PolicyResultKey.String(d.Verdict()), attribute.String("agenthelm.policy.revision", d.Revision),
		attribute.String("agenthelm.policy.decision_id", d.ID), attribute.StringSlice("agenthelm.policy.reasons", d.Reasons),
		attribute.Bool("agenthelm.policy.dry_run", d.DryRun))
	e.opts.Tracer.End(span, d.Err)
	e.opts.Tracer.Metrics().PolicyDecision(ctx, call.Upstream, call.Tool, d.Verdict())
	dn := decisionNote{Type: "decision", ID: d.ID, Revision: d.Revision, Verdict: d.Verdict(), Reasons: d.Reasons,
		Approvers: d.Approvers, Labels: d.Labels, DryRun: d.DryRun, DurationUS: d.Duration.Microseconds()}
	if d.Err != nil {
		dn.Error = d.Err.Error()
	}
	res := gateResult{decisionID: d.ID, notes: []saga.Event{note(n, dn)}}
	if d.DryRun {
		if dn.Verdict != policy.VerdictAllow {
			e.log.Info("dry-run: the policy would not have allowed this call; it was forwarded", "saga", l.id(), "tool", call.Tool, "verdict", dn.Verdict, "reasons", d.Reasons)
		}
		return res
	}
	switch dn.Verdict {
	case policy.VerdictAllow:
		return res
	case policy.VerdictDeny:
		res.refuse = "agenthelm denied this call: " + reasons(d.Reasons, "the policy did not allow it")
		res.reasons = d.Reasons
		return res
	}
	// Held for approval.
	if e.opts.Approvals == nil {
		res.refuse = "agenthelm denied this call: it needs approval (" + reasons(d.Reasons, "policy") + ") and no approval channel is configured"
		res.reasons = d.Reasons
		return res
	}
	if resume != nil {
		// The retry of a call answered input_required: it comes back for
		// the approval it was given, not for a new one.
		return e.resumeHeld(ctx, l, call, in, res, resume, digest)
	}
	if c, ok := l.takeCarried(call, digest, e.opts.Now()); ok {
		// The client's retry of an approved call that the upstream itself
		// answered input_required: the same call, continued.
		dec := approvals.Decision{Approved: true, By: c.by, At: e.opts.Now(), ArgsDigest: digest,
			Reason: fmt.Sprintf("approval of step %d carried over: the upstream asked for input (input_required) and this is the client's retry", c.req.Step)}
		res.notes = append(res.notes, note(n, approvalNote{Type: "approval_decided", ID: c.req.ID, Decision: &dec}))
		res.approved, res.by = &c.req, c.by
		e.log.Info("call approved: carried over from the step the upstream answered input_required", "saga", l.id(), "step", n, "from_step", c.req.Step, "approval", c.req.ID)
		return res
	}
	wait := d.ApprovalTimeout
	if wait <= 0 {
		wait = e.opts.ApprovalTimeout
	}
	wait = min(wait, e.opts.MaxHold)
	req := approvals.Request{
		ID: approvals.NewID(), Saga: l.id(), Step: n, Upstream: call.Upstream, Tool: call.Tool,
		Arguments: call.Arguments, ArgsDigest: digest, Reasons: d.Reasons, Approvers: d.Approvers, Labels: d.Labels,
		Agent: in.Agent.ID, DecisionID: d.ID, Created: e.opts.Now(), Expires: e.opts.Now().Add(wait),
	}
	for _, s := range in.Saga.Steps {
		req.History = append(req.History, approvals.Step{Upstream: s.Upstream, Tool: s.Tool, Status: s.Status, Args: s.Arguments})
	}
	for i := range req.History {
		req.History[i].N = i + 1
	}
	// The pending approval is in the journal before the call waits.
	l.mu.Lock()
	journaled := req
	journaled.Arguments, _ = e.redact(call.ArgsMember(), req.Arguments)
	err := e.record(ctx, l, append(res.notes, note(n, approvalNote{Type: "approval_requested", ID: req.ID, Request: &journaled}))...)
	l.mu.Unlock()
	res.notes = nil // journaled
	if err != nil {
		res.refuse = "agenthelm could not journal the approval request, so the call was not sent: " + err.Error()
		return res
	}
	e.log.Info("call held for approval", "saga", l.id(), "step", n, "tool", call.Tool, "approval", req.ID, "expires", req.Expires.Format(time.RFC3339))
	if call.CanRequestInput {
		// A 2026-07-28 client with elicitation: answer input_required now;
		// its user answers in the client and the call comes back, while
		// the out-of-band channels work as for any held call (rule 23).
		e.opts.Approvals.Open(ctx, req)
		r := e.inputRequired(req, principalOf(in, call), call, digest)
		res.input, res.held = &r, &req
		return res
	}
	actx, span := e.opts.Tracer.StartInternal(ctx, telemetry.SpanApprovalWait, attribute.String("agenthelm.approval.id", req.ID))
	e.opts.Tracer.Metrics().ApprovalHeld(ctx)
	// Pending before the client is asked: a quick answer must find it.
	e.opts.Approvals.Open(actx, req)
	askCtx, stopAsking := context.WithCancel(actx)
	asked := e.askInClient(askCtx, call, req)
	dec, err := e.opts.Approvals.Wait(actx, req.ID, e.keepAlive(ctx, call, req))
	stopAsking()
	<-asked
	result := approvalResult(dec, err)
	span.SetAttributes(telemetry.ApprovalResultKey.String(result), attribute.String("agenthelm.approval.by", dec.By))
	span.End()
	e.opts.Tracer.Metrics().ApprovalResolved(ctx, result, e.opts.Now().Sub(req.Created))
	return e.settle(res, req, dec, err, digest)
}

// settle turns how an approval ended into the gate's result: the decision
// note for the journal and, unless it was approved for exactly these
// arguments, why the call is refused. err is why the wait ended without a
// decision (the agent withdrew the call).
func (e *Engine) settle(res gateResult, req approvals.Request, dec approvals.Decision, err error, digest string) gateResult {
	if err != nil {
		dec = approvals.Decision{By: "agent", Reason: "the agent withdrew the call: " + err.Error(), At: e.opts.Now(), ArgsDigest: digest}
	}
	res.notes = append(res.notes, note(req.Step, approvalNote{Type: "approval_decided", ID: req.ID, Decision: &dec}))
	switch {
	case dec.Approved && dec.ArgsDigest == digest:
		e.log.Info("call approved", "saga", req.Saga, "step", req.Step, "approval", req.ID, "by", dec.By)
		res.approved, res.by = &req, dec.By
	case dec.Expired:
		res.refuse, res.rejected = fmt.Sprintf("agenthelm denied this call: its approval (%s) expired after %s without a decision", req.ID, req.Expires.Sub(req.Created).Round(time.Second)), true
		res.reasons = []string{"approval expired"}
	default:
		why := dec.Reason
		if why == "" {
			why = "no reason given"
		}
		res.refuse, res.rejected = fmt.Sprintf("agenthelm denied this call: %s rejected it (%s)", dec.By, why), true
		res.reasons = []string{why}
	}
	return res
}

// kind is how a refusal is marked for programs (toolcall.Refused*).
func (g gateResult) kind() string {
	if g.rejected {
		return toolcall.RefusedApprovalRejected
	}
	return toolcall.RefusedDenied
}

// approvalResult names how an approval ended, for traces and metrics.
func approvalResult(dec approvals.Decision, err error) string {
	switch {
	case err != nil:
		return "withdrawn"
	case dec.Approved:
		return "approved"
	case dec.Expired:
		return "expired"
	}
	return "rejected"
}

func reasons(rs []string, fallback string) string {
	if len(rs) == 0 {
		return fallback
	}
	return strings.Join(rs, "; ")
}

// keepAlive sends progress notifications while a call is held, but only
// when the agent asked for progress (rule 24): its client may then reset
// its request timeout.
func (e *Engine) keepAlive(ctx context.Context, call *toolcall.Call, req approvals.Request) func() {
	tok := jsonrpc.Member(call.Meta(), "progressToken")
	if tok == nil || call.Notify == nil {
		return nil
	}
	k := 0
	return func() {
		k++
		params, _ := jsonrpc.Marshal(map[string]any{
			"progressToken": tok, "progress": k,
			"message": fmt.Sprintf("waiting for approval %s (expires %s)", req.ID, req.Expires.Format(time.RFC3339)),
		})
		_ = call.Notify(ctx, jsonrpc.NewNotification("notifications/progress", params))
	}
}

// policyHistory is how many of a saga's latest steps the policy sees (its
// counts and amounts cover them all). It bounds the cost of a decision in a
// saga that runs for hours; budgets read saga.amounts, which adds up every
// step.
const policyHistory = 128

// policyInput builds the policy's input document for a call.
func (e *Engine) policyInput(l *live, call *toolcall.Call, rule Rule) policy.Input {
	now := e.opts.Now()
	tool := policy.ToolInfo{Name: call.Tool, Upstream: call.Upstream, HasCompensator: rule.Compensate != nil && !rule.Irreversible,
		ReadOnly: rule.ReadOnly, Irreversible: rule.Irreversible, Idempotent: rule.Idempotent}
	agent := policy.AgentInfo{Client: call.Client}
	switch {
	case call.TokenSubject != "":
		agent.ID, agent.Source = call.TokenSubject, policy.AgentFromToken
	case e.opts.AgentHeader != "" && call.Transport.Headers[http.CanonicalHeaderKey(e.opts.AgentHeader)] != "":
		agent.ID, agent.Source = call.Transport.Headers[http.CanonicalHeaderKey(e.opts.AgentHeader)], policy.AgentFromHeader
	case call.Client.Name != "":
		agent.ID, agent.Source = call.Client.Name, policy.AgentFromClientInfo
	default:
		agent.ID, agent.Source = call.Transport.SessionID, policy.AgentFromSession
	}
	l.mu.Lock()
	info := policy.SagaInfo{ID: l.s.ID}
	if !l.s.Created.IsZero() {
		info.ElapsedSeconds = now.Sub(l.s.Created).Seconds()
	}
	// Counts, amounts and recent calls cover the whole saga; the step
	// list only its most recent steps, so that a long-running agent's
	// calls do not get slower with every step. What is read from a step's
	// arguments is read once (policyView).
	v := &l.policy
	v.extend(l.s.Steps)
	// Counted in an array, not a map: this runs over every step of the
	// saga on every call.
	var counts [len(policyStatuses)]int
	for _, st := range l.s.Steps {
		counts[statusIndex(policyStatus(st))]++
	}
	info.Counts = map[string]int{"total": len(l.s.Steps)}
	for i, n := range counts {
		if n > 0 {
			info.Counts[policyStatuses[i]] = n
		}
	}
	// Amounts: a budget must not be spent past its limit in small calls
	// beyond the latest steps.
	amountSteps := make([]policy.StepSummary, len(v.withAmounts))
	amounts := make([]policy.StepAmounts, len(v.withAmounts))
	for i, k := range v.withAmounts {
		st := l.s.Steps[k]
		amountSteps[i] = policy.StepSummary{Tool: st.Tool, Upstream: st.Upstream, Status: policyStatus(st)}
		amounts[i] = v.amounts[k]
	}
	info.Amounts = policy.SumAmounts(amountSteps, amounts)
	info.RecentCalls = v.recentCalls(l.s.Steps, now.Unix())
	from := max(0, len(l.s.Steps)-policyHistory)
	info.Steps = make([]policy.StepSummary, 0, len(l.s.Steps)-from)
	for i := from; i < len(l.s.Steps); i++ {
		info.Steps = append(info.Steps, v.summary(i, l.s.Steps[i]))
	}
	l.mu.Unlock()
	if call.Transport.Kind == "http" {
		// The policy sees an HTTP tool call's body as its arguments, so
		// that rules over arguments (an amount) hold at both doors; the
		// rest of the request is in the transport.
		c := *call
		c.Arguments = httpBody(call.Arguments)
		return policy.NewInput(&c, tool, agent, info, now)
	}
	return policy.NewInput(call, tool, agent, info, now)
}

// httpBody is the body of an HTTP tool call's arguments, the request
// document {method, path, params, query, headers, body}; nil when it has
// none.
func httpBody(request json.RawMessage) json.RawMessage {
	b := jsonrpc.Member(request, "body")
	if string(b) == "null" {
		return nil
	}
	return b
}

// policyView keeps, per step of a live saga, what the policy input needs
// from it and only its arguments determine: its amounts (read once) and
// its summary (rebuilt when its status changes). Steps are only ever
// appended, so it grows with them. The caller holds the saga's lock.
type policyView struct {
	amounts     []policy.StepAmounts // by step index
	withAmounts []int                // indexes of the steps that have amounts
	summaries   []policy.StepSummary // by step index; Tool "" until built

	// The last minute's calls, kept as a sliding window over the steps
	// (which are in the order they were called): steps [recentFrom,
	// recentTo) are counted in recent, as of recentNow.
	recent               map[string]int
	recentFrom, recentTo int
	recentNow            int64
}

// recentCalls counts the calls of the last minute as of now by
// "<upstream>/<tool>", denied ones not counted (input.saga.recent_calls):
// each step is added once and removed once as the window slides, so a
// runaway agent's thousands of calls a minute are not counted again on
// every call. A step's denial is known when it is added (a refused call's
// intent and outcome are staged together).
func (v *policyView) recentCalls(steps []*saga.Step, now int64) map[string]int {
	if v.recent == nil || now < v.recentNow || v.recentTo > len(steps) {
		v.recent, v.recentFrom, v.recentTo = map[string]int{}, 0, 0 // first use, clock went back, or another saga: start over
	}
	v.recentNow = now
	for ; v.recentTo < len(steps); v.recentTo++ {
		if st := steps[v.recentTo]; policy.CountsAsRecent(policyStatus(st)) {
			v.recent[policy.RecentKey(st.Upstream, st.Tool)]++
		}
	}
	for ; v.recentFrom < v.recentTo; v.recentFrom++ {
		st := steps[v.recentFrom]
		if policy.InRecentWindow(st.Started.Unix(), now) {
			break
		}
		if policy.CountsAsRecent(policyStatus(st)) {
			if k := policy.RecentKey(st.Upstream, st.Tool); v.recent[k] > 1 {
				v.recent[k]--
			} else {
				delete(v.recent, k)
			}
		}
	}
	return maps.Clone(v.recent)
}

// extend reads the amounts of the steps it has not seen yet.
func (v *policyView) extend(steps []*saga.Step) {
	if len(v.amounts) > len(steps) {
		*v = policyView{} // not the same saga's steps: start over
	}
	for i := len(v.amounts); i < len(steps); i++ {
		a := policy.AmountsIn(policyArgs(steps[i]))
		v.amounts = append(v.amounts, a)
		if len(a) > 0 {
			v.withAmounts = append(v.withAmounts, i)
		}
	}
	for len(v.summaries) < len(steps) {
		v.summaries = append(v.summaries, policy.StepSummary{})
	}
}

// summary is step i's summary for the policy input.
func (v *policyView) summary(i int, st *saga.Step) policy.StepSummary {
	status := policyStatus(st)
	if s := v.summaries[i]; s.Tool == st.Tool && s.Status == status && s.Tool != "" {
		return s
	}
	s := policy.NewStepSummary(st.Tool, st.Upstream, status, policyArgs(st), st.Started)
	v.summaries[i] = s
	return s
}

// policyArgs are a step's arguments as the policy sees them: an HTTP tool
// call's body.
func policyArgs(st *saga.Step) json.RawMessage {
	if st.Launch != nil && st.Launch.Transport == "http" {
		return httpBody(st.Args)
	}
	return st.Args
}

// policyStatuses are the statuses policyStatus returns.
var policyStatuses = [...]string{policy.StepPending, policy.StepSucceeded, policy.StepFailed, policy.StepDenied, policy.StepCompensated, policy.StepStuck}

// statusIndex is s's index in policyStatuses.
func statusIndex(s string) int {
	for i, x := range policyStatuses {
		if x == s {
			return i
		}
	}
	panic("agenthelm: unknown policy status " + s)
}

// policyStatus maps a step's state onto the statuses policies see.
func policyStatus(st *saga.Step) string {
	switch {
	case st.Comp.Status == saga.CompDone:
		return policy.StepCompensated
	case st.Comp.Status == saga.CompFailed || st.Comp.Status == saga.CompNeedsHuman:
		return policy.StepStuck
	}
	switch st.Status {
	case saga.InFlight:
		return policy.StepPending
	case saga.Succeeded:
		return policy.StepSucceeded
	case saga.Denied:
		return policy.StepDenied
	}
	return policy.StepFailed
}

func (l *live) id() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.ID
}

// askInClient asks the agent's own client for the approval too, when it
// declared elicitation (rule 23): the person at the client answers in
// place, and the first decision, there or out of band, wins. The returned
// channel closes when the question is settled or withdrawn.
func (e *Engine) askInClient(ctx context.Context, call *toolcall.Call, req approvals.Request) <-chan struct{} {
	done := make(chan struct{})
	if call.Ask == nil {
		close(done)
		return done
	}
	params := approvalQuestion(req)
	go func() {
		defer close(done)
		res, err := call.Ask(ctx, "elicitation/create", params)
		if err != nil || res.Error != nil {
			return // the out-of-band channels still work
		}
		e.takeAnswer(call, req, res.Result)
	}()
	return done
}

// approvalQuestion is the elicitation that asks the person at the agent's
// client to approve a held call: with 2025-11-25 clients an
// elicitation/create request, with 2026-07-28 clients an input request of
// an input_required result.
func approvalQuestion(req approvals.Request) json.RawMessage {
	params, _ := jsonrpc.Marshal(map[string]any{
		"message": fmt.Sprintf("agenthelm holds this call for approval: %s/%s %s\n\nWhy: %s\nApproval %s expires at %s.",
			req.Upstream, req.Tool, req.Arguments, reasons(req.Reasons, "policy"), req.ID, req.Expires.Format(time.RFC3339)),
		"requestedSchema": map[string]any{
			"type": "object",
			"properties": map[string]any{
				"approve": map[string]any{"type": "boolean", "title": "Approve this call"},
				"reason":  map[string]any{"type": "string", "title": "Reason (kept in the journal)"},
			},
			"required": []string{"approve"},
		},
	})
	return params
}

// takeAnswer decides a held call as the person at the agent's client
// answered the approval question (an elicitation result). "cancel", or an
// answer that does not parse, decides nothing: others may still decide.
func (e *Engine) takeAnswer(call *toolcall.Call, req approvals.Request, result json.RawMessage) {
	var answer struct {
		Action  string `json:"action"`
		Content struct {
			Approve bool   `json:"approve"`
			Reason  string `json:"reason"`
		} `json:"content"`
	}
	if json.Unmarshal(result, &answer) != nil {
		return
	}
	by := "client"
	if call.Client.Name != "" {
		by = "client:" + call.Client.Name
	}
	switch answer.Action {
	case "accept":
		_, _ = e.opts.Approvals.Decide(req.ID, answer.Content.Approve, by, answer.Content.Reason)
	case "decline":
		_, _ = e.opts.Approvals.Decide(req.ID, false, by, "declined in the client")
	}
}
