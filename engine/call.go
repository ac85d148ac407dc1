package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/agenthelm/agenthelm/internal/fault"
	"github.com/agenthelm/agenthelm/journal"
	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
	"github.com/agenthelm/agenthelm/saga"
	"github.com/agenthelm/agenthelm/telemetry"
	"github.com/agenthelm/agenthelm/toolcall"
)

// Keys agenthelm reads from and writes to params._meta.
const (
	MetaSaga           = "io.agenthelm/saga"
	MetaIdempotencyKey = "io.agenthelm/idempotency-key"
	MetaRollback       = "io.agenthelm/rollback"
)

// InterceptToolCall makes the call a step of its saga: it journals the
// intent, forwards, journals the outcome, and unwinds the saga when the
// call failed in a way that should.
func (e *Engine) InterceptToolCall(ctx context.Context, call *toolcall.Call, forward toolcall.Forward) (toolcall.Result, error) {
	if res, ok := e.control(ctx, call); ok {
		return res, nil
	}
	resume, err := e.takeRequestState(call)
	if err != nil {
		e.log.Warn("call refused: bad request state", "upstream", call.Upstream, "tool", call.Tool, "err", err)
		telemetry.SetOutcome(ctx, telemetry.OutcomeRefused)
		return refusal(toolcall.RefusedBadRequestState, "agenthelm refused this call: "+err.Error(), "", nil), nil
	}
	var l *live
	if resume != nil {
		l, err = e.liveSaga(ctx, resume.state.Saga)
	} else {
		l, err = e.sagaFor(ctx, call)
	}
	var ended *sagaEnded
	if errors.As(err, &ended) {
		// Rule 15, for a saga that has left memory.
		telemetry.SetOutcome(ctx, telemetry.OutcomeRefused)
		return sagaClosed(ended.id, ended.status), nil
	}
	if err != nil {
		return toolcall.Result{}, err
	}
	defer e.release(l)
	rule := e.opts.Rules.Rule(call.Upstream, call.Tool)

	l.mu.Lock()
	if l.s.Status != saga.Open {
		st := l.s.Status
		id := l.s.ID
		l.mu.Unlock()
		// Rule 15: an aborting or finished saga takes no new steps.
		telemetry.SetOutcome(ctx, telemetry.OutcomeRefused)
		return sagaClosed(id, string(st)), nil
	}
	if l.idle != nil {
		l.idle.Stop()
	}
	l.inflight.Add(1)
	sagaID := l.s.ID
	n := len(l.s.Steps) + 1
	l.mu.Unlock()
	ctx = telemetry.WithSaga(ctx, sagaID, n)
	forward = e.opts.Tracer.WrapForward(call.Upstream, call.Tool, forward)
	done := sync1(func() {
		l.inflight.Done()
		e.armIdle(l)
	})
	defer done()

	intent := &saga.Intent{
		Upstream:              call.Upstream,
		Tool:                  call.Tool,
		Args:                  call.Arguments,
		ArgsDigest:            digest(call.Arguments),
		IdempotencyKey:        saga.IdempotencyKey(sagaID, n, "forward"),
		ReadOnly:              rule.ReadOnly,
		Irreversible:          rule.Irreversible,
		ErrorsMayLeaveEffects: rule.ErrorsMayLeaveEffects,
		Session:               call.Transport.SessionID,
	}
	if e.opts.Describe != nil {
		intent.Launch = e.opts.Describe(call.Upstream)
	}
	intent.Traceparent = telemetry.Traceparent(ctx)
	if c := rule.Compensate; c != nil && !rule.Irreversible && !rule.ReadOnly {
		comp := *c
		if comp.Upstream == "" {
			comp.Upstream = call.Upstream
		}
		intent.Compensator = &comp
	}
	g := e.gate(ctx, l, call, rule, n, intent.ArgsDigest, resume)
	intent.DecisionID = g.decisionID
	if g.input != nil {
		e.detach(l, call, intent, *g.held)
		telemetry.SetOutcome(ctx, telemetry.OutcomeInputRequired)
		return *g.input, nil
	}
	if g.refuse != "" {
		return e.refuse(ctx, l, call, intent, g, done)
	}
	if rule.Capture != nil && !rule.ReadOnly {
		capture, err := e.capture(ctx, call, rule.Capture)
		if err != nil {
			return refusal(toolcall.RefusedCaptureFailed, fmt.Sprintf("agenthelm refused this call: capturing the state it changes failed: %v", err), sagaID, nil), nil
		}
		intent.Capture = capture
	}

	// Rule 1: the intent is on disk before anything is sent.
	l.mu.Lock()
	if l.s.Status != saga.Open || len(l.s.Steps)+1 != n {
		// Another call took step n first, or the saga ended meanwhile.
		n = len(l.s.Steps) + 1
		ctx = telemetry.WithSaga(ctx, sagaID, n)
		intent.IdempotencyKey = saga.IdempotencyKey(sagaID, n, "forward")
		if l.s.Status != saga.Open {
			st := l.s.Status
			l.mu.Unlock()
			return sagaClosed(sagaID, string(st)), nil
		}
	}
	fault.Point("before-intent")
	if masked, changed := e.redact(call.ArgsMember(), intent.Args); changed {
		intent.Args = masked
		l.keepOriginal(n, call.Arguments, nil)
	}
	pending, err := e.stage(l, append(withStep(g.notes, n), saga.Event{Kind: saga.EvIntent, Step: n, Intent: intent})...)
	l.mu.Unlock()
	if err == nil {
		err = e.await(ctx, l, pending)
	}
	if err != nil {
		e.log.Error("intent not journaled: call refused", "saga", sagaID, "tool", call.Tool, "err", err)
		return toolcall.Result{}, fmt.Errorf("%w, so it was not sent: %w", toolcall.ErrNotJournaled, err)
	}

	params, err := withMeta(call.Params, MetaIdempotencyKey, intent.IdempotencyKey)
	if err != nil {
		params = call.Params
	}
	fault.Point("after-intent")
	res, ferr := forward(ctx, params)
	fault.Point("after-send")
	var retries []saga.Event
	if rule.Idempotent && rule.Retry != nil {
		res, retries, ferr = e.retryForward(ctx, call, rule.Retry, params, res, ferr)
	}
	status, failure := classify(res, ferr)

	// Rule 2: the outcome is on disk before the agent is answered.
	out := saga.Event{Kind: saga.EvOutcome, Step: n, Status: string(status)}
	if ferr == nil {
		if res.Error != nil {
			out.Error = res.Error.Message
		} else {
			out.Result = res.Result
		}
	} else {
		out.Error = ferr.Error()
	}
	unwind := failure != "" && e.unwind[failure] && !rule.ContinueOnError
	evs := append(withStep(retries, n), out)
	l.mu.Lock()
	if masked, changed := e.redact(call.ResultMember(), out.Result); changed {
		l.keepOriginal(n, nil, out.Result)
		evs[len(evs)-1].Result = masked
	}
	if unwind && l.s.Status == saga.Open {
		evs = append(evs, saga.Event{Kind: saga.EvAborted, Step: n, Reason: fmt.Sprintf("step %d (%s) failed: %s", n, call.Tool, status), By: "engine"})
	}
	pending, err = e.stage(l, evs...)
	aborting := l.s.Status == saga.Aborting
	l.mu.Unlock()
	if err == nil {
		err = e.await(ctx, l, pending)
	}
	if err != nil {
		e.log.Error("outcome not journaled", "saga", sagaID, "step", n, "err", err)
		return toolcall.Result{}, fmt.Errorf("%w's outcome (the call may have run): %w", toolcall.ErrNotJournaled, err)
	}
	if status == saga.InputRequired && g.approved != nil {
		now := e.opts.Now()
		l.carryApproval(res.Result, carriedApproval{req: *g.approved, by: g.by, expires: now.Add(e.opts.ApprovalTimeout)}, now)
	}

	if !unwind || !aborting {
		return res, ferr
	}
	// This call's own step is done: stop counting it before waiting for
	// the saga's other calls in flight.
	done()
	e.runUnwind(context.WithoutCancel(ctx), l)
	l.mu.Lock()
	summary := summarize(l.s)
	l.mu.Unlock()
	telemetry.SetOutcome(ctx, telemetry.OutcomeUnwound)
	return withRollback(res, ferr, summary), nil
}

// refuse records a call the gate refused as a denied step (its intent and
// its outcome, with the decision and approval notes, never forwarded),
// unwinds the saga if configured to, and answers the agent with a tool
// error that gives the reasons.
func (e *Engine) refuse(ctx context.Context, l *live, call *toolcall.Call, intent *saga.Intent, g gateResult, done func()) (toolcall.Result, error) {
	unwind := e.opts.UnwindOnDenial && !g.rejected || e.opts.UnwindOnRejection && g.rejected
	l.mu.Lock()
	if l.s.Status != saga.Open {
		st := l.s.Status
		l.mu.Unlock()
		return refusal(g.kind(), fmt.Sprintf("%s (and saga %s is now %s)", g.refuse, l.id(), st), l.id(), g.reasons), nil
	}
	n := len(l.s.Steps) + 1
	intent.IdempotencyKey = saga.IdempotencyKey(l.s.ID, n, "forward")
	evs := append(withStep(g.notes, n),
		saga.Event{Kind: saga.EvIntent, Step: n, Intent: intent},
		saga.Event{Kind: saga.EvOutcome, Step: n, Status: string(saga.Denied), Error: g.refuse})
	if unwind {
		evs = append(evs, saga.Event{Kind: saga.EvAborted, Step: n, Reason: fmt.Sprintf("step %d (%s) was denied", n, call.Tool), By: "engine"})
	}
	pending, err := e.stage(l, evs...)
	l.mu.Unlock()
	if err == nil {
		err = e.await(ctx, l, pending)
	}
	if err != nil {
		e.log.Error("denial not journaled", "tool", call.Tool, "err", err)
	}
	e.log.Info("call refused", "saga", l.id(), "step", n, "tool", call.Tool, "why", g.refuse)
	telemetry.SetOutcome(ctx, telemetry.OutcomeDenied)
	res := refusal(g.kind(), g.refuse, l.id(), g.reasons)
	if !unwind || err != nil {
		return res, nil
	}
	done()
	e.runUnwind(context.WithoutCancel(ctx), l)
	l.mu.Lock()
	summary := summarize(l.s)
	l.mu.Unlock()
	return withRollback(res, nil, summary), nil
}

// withStep sets the step of note events (the step number is final only
// when the intent is staged).
func withStep(evs []saga.Event, n int) []saga.Event {
	out := make([]saga.Event, len(evs))
	for i, ev := range evs {
		ev.Step = n
		out[i] = ev
	}
	return out
}

// classify maps a forward's result to the step's outcome and the failure
// kind it counts as ("" for success).
func classify(res toolcall.Result, err error) (saga.StepStatus, string) {
	switch {
	case err == nil && res.Error != nil:
		return saga.ProtocolError, FailProtocolError
	case err == nil && res.IsToolError():
		return saga.ToolError, FailToolError
	case err == nil && inputRequired(res.Result):
		return saga.InputRequired, ""
	case err == nil:
		return saga.Succeeded, ""
	case errors.Is(err, toolcall.ErrNotSent):
		return saga.NotSent, FailUpstreamDown
	case errors.Is(err, toolcall.ErrTimeout):
		return saga.Timeout, FailTimeout
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return saga.Cancelled, ""
	}
	// The call was sent and no answer came: it may have run.
	return saga.InDoubt, FailUpstreamDown
}

// inputRequired reports whether a tools/call result is incomplete: the
// upstream (MCP 2026-07-28) asks the client for input first, and the
// client will send the call again, which becomes a step of its own.
func inputRequired(result json.RawMessage) bool {
	var rt string
	return json.Unmarshal(jsonrpc.Member(result, "resultType"), &rt) == nil && rt == "input_required"
}

// capture runs a step's pre-image call.
func (e *Engine) capture(ctx context.Context, call *toolcall.Call, c *Capture) (json.RawMessage, error) {
	args, err := e.opts.Eval(c.Args, call.Arguments, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("capture arguments: %w", err)
	}
	params, _ := jsonrpc.Marshal(map[string]any{"name": c.Tool, "arguments": args})
	cctx, cancel := context.WithTimeout(ctx, e.opts.CallTimeout)
	defer cancel()
	cctx, span := e.opts.Tracer.StartInternal(cctx, telemetry.SpanCapture)
	invoke := e.opts.Tracer.WrapForward(call.Upstream, c.Tool, func(ctx context.Context, p json.RawMessage) (toolcall.Result, error) {
		return e.opts.Invoker.Invoke(ctx, call.Upstream, call.Transport.SessionID, "tools/call", p)
	})
	res, err := invoke(cctx, params)
	e.opts.Tracer.End(span, err)
	if err != nil {
		return nil, err
	}
	if res.Error != nil {
		return nil, fmt.Errorf("%s: %s", c.Tool, res.Error.Message)
	}
	// A tool error is a valid pre-image (e.g. "file not found"): the
	// compensation's expression decides what it means.
	return res.Result, nil
}

// sagaFor resolves the saga a call belongs to (BRIEF §5): an explicit id,
// else the scope's open saga, else a new one.
func (e *Engine) sagaFor(ctx context.Context, call *toolcall.Call) (*live, error) {
	if id := explicitSaga(call); id != "" {
		if err := e.endedOnDisk(ctx, id); err != nil {
			return nil, err
		}
		l, err := e.liveSaga(ctx, id)
		switch {
		case err == nil:
			return l, nil
		case !errors.Is(err, journal.ErrNotFound):
			// A saga that could not be read is not a new one: opening it
			// again would append a second beginning to its history.
			return nil, fmt.Errorf("agenthelm could not read saga %s, so the call was not sent: %w", id, err)
		}
		return e.open(ctx, id, "explicit:"+id)
	}
	key := e.scopeKey(call)
	e.mu.Lock()
	id := e.scopes[key]
	e.mu.Unlock()
	if id != "" {
		if l, err := e.liveSaga(ctx, id); err == nil {
			l.mu.Lock()
			open := l.s.Status == saga.Open
			l.mu.Unlock()
			if open {
				return l, nil
			}
			e.release(l)
		}
	}
	l, err := e.open(ctx, e.newSagaID(), key)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.scopes[key] = l.s.ID
	l.scope = key
	e.mu.Unlock()
	return l, nil
}

// sagaClosed refuses a call to a saga that is not open (rule 15).
func sagaClosed(id, status string) toolcall.Result {
	return refusal(toolcall.RefusedSagaClosed, fmt.Sprintf("agenthelm refused this call: saga %s is %s and takes no new steps", id, status), id, nil)
}

// sagaEnded is sagaFor's error for a call that names an ended saga.
type sagaEnded struct{ id, status string }

func (e *sagaEnded) Error() string { return fmt.Sprintf("saga %s is %s", e.id, e.status) }

// endedOnDisk returns a *sagaEnded for an ended saga that is not in
// memory, from its head alone: a call that names it is refused without
// loading all its events.
func (e *Engine) endedOnDisk(ctx context.Context, id string) error {
	e.mu.Lock()
	_, held := e.live[id]
	e.mu.Unlock()
	if held {
		return nil
	}
	h, err := e.opts.Journal.Head(ctx, id)
	if err != nil || !h.Terminal {
		return nil // not found: a new saga; other errors show in the load
	}
	return &sagaEnded{id: id, status: h.Status}
}

// open starts a saga and journals it.
func (e *Engine) open(ctx context.Context, id, scope string) (*live, error) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, toolcall.ErrShuttingDown
	}
	if l := e.live[id]; l != nil {
		e.use(l)
		e.mu.Unlock()
		return l, nil
	}
	l := &live{s: saga.New(id)}
	e.live[id] = l
	e.use(l)
	e.mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := e.record(ctx, l, saga.Event{Kind: saga.EvOpened, Scope: scope}); err != nil {
		e.mu.Lock()
		delete(e.live, id)
		e.mu.Unlock()
		return nil, fmt.Errorf("agenthelm could not journal a new saga, so the call was not sent: %w", err)
	}
	e.log.Info("saga opened", "saga", id, "scope", scope)
	return l, nil
}

// scopeKey says which saga a call without an explicit id belongs to.
func (e *Engine) scopeKey(call *toolcall.Call) string {
	if call.Transport.Protocol == "stdio" && call.Transport.SessionID != "" {
		// wrap: the stdio process's lifetime bounds the saga.
		return "session:" + call.Transport.SessionID
	}
	if e.opts.Scope == "session" && call.Transport.SessionID != "" {
		return "session:" + call.Transport.SessionID
	}
	if call.Transport.SessionID == "" && call.Transport.Kind == "mcp" {
		// A stateless (2026-07-28) client has no session: the trace it
		// propagates, when it does, is the best boundary it offers.
		if id := traceID(call); id != "" {
			return "trace:" + id
		}
	}
	if call.TokenSubject != "" {
		return "agent:" + call.TokenSubject
	}
	if e.opts.AgentHeader != "" {
		if v := call.Transport.Headers[http.CanonicalHeaderKey(e.opts.AgentHeader)]; v != "" {
			return "agent:" + v
		}
	}
	if call.Client.Name != "" {
		return "agent:" + call.Client.Name
	}
	return "agent:default"
}

// EndScope commits the open saga of a session that ended (a stdio process
// exited, an MCP session was deleted) once its calls have finished. It
// returns when the commit is journaled.
func (e *Engine) EndScope(ctx context.Context, sessionID string) {
	key := "session:" + sessionID
	e.mu.Lock()
	id := e.scopes[key]
	delete(e.scopes, key)
	e.mu.Unlock()
	if id == "" {
		return
	}
	if l, err := e.liveSaga(ctx, id); err == nil {
		e.commitWhenIdle(ctx, l, "session ended")
		e.release(l)
	}
}

// armIdle (re)starts a saga's idle-commit timer.
func (e *Engine) armIdle(l *live) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.s.Status != saga.Open {
		return
	}
	if l.idle != nil {
		l.idle.Stop()
	}
	l.idle = time.AfterFunc(e.opts.IdleCommit, func() {
		e.wg.Add(1)
		defer e.wg.Done()
		e.commitWhenIdle(e.ctx, l, "idle")
		e.evictIfDone(l)
	})
}

// commitWhenIdle commits an open saga once no call of it is in flight.
func (e *Engine) commitWhenIdle(ctx context.Context, l *live, reason string) {
	waitOrDone(ctx, &l.inflight)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.s.Status != saga.Open || ctx.Err() != nil {
		return
	}
	if l.idle != nil {
		l.idle.Stop()
	}
	if err := e.record(context.WithoutCancel(ctx), l, saga.Event{Kind: saga.EvCommitted, Reason: reason, By: "engine"}); err != nil {
		e.log.Error("commit not journaled", "saga", l.s.ID, "err", err)
		return
	}
	e.log.Info("saga committed", "saga", l.s.ID, "steps", len(l.s.Steps), "reason", reason)
}

// explicitSaga reads an explicit saga id from the call's _meta or header.
func explicitSaga(call *toolcall.Call) string {
	var id string
	if meta := call.Meta(); meta != nil {
		_ = json.Unmarshal(jsonrpc.Member(meta, MetaSaga), &id)
	}
	if id == "" {
		id = call.Transport.Headers["X-Agenthelm-Saga"] // canonical form of X-AgentHelm-Saga
	}
	return id
}

// digest is a canonical digest of a call's arguments: the same JSON value
// gives the same digest whatever its whitespace and key order. Numbers are
// kept as written (json.Number): decoding them to float64 would give two
// different large amounts or ids one digest, and an approval is bound to it.
func digest(args json.RawMessage) string {
	var v any
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		v = string(args)
	}
	canon, _ := json.Marshal(v) // maps marshal with sorted keys
	h := sha256.Sum256(canon)
	return "sha256:" + hex.EncodeToString(h[:])
}

// withMeta sets params._meta[key] = value, keeping every other byte.
func withMeta(params json.RawMessage, key, value string) (json.RawMessage, error) {
	meta := jsonrpc.Member(params, "_meta")
	v, _ := jsonrpc.Marshal(value)
	meta, err := jsonrpc.SetMember(meta, key, v)
	if err != nil {
		return nil, err
	}
	return jsonrpc.SetMember(params, "_meta", meta)
}

// refusal is the answer to a call agenthelm did not forward: a tool error
// whose text says why (the model can adapt), and, for programs such as the
// HTTP tool proxy, _meta["io.agenthelm/refused"] saying the same as data:
// {kind, saga, reasons}.
func refusal(kind, text, sagaID string, reasons []string) toolcall.Result {
	m := map[string]any{"kind": kind}
	if sagaID != "" {
		m["saga"] = sagaID
	}
	if len(reasons) > 0 {
		m["reasons"] = reasons
	}
	b, _ := jsonrpc.Marshal(map[string]any{
		"content": []map[string]any{{"type": "text", "text": text}},
		"isError": true,
		"_meta":   map[string]any{toolcall.MetaRefused: m},
	})
	return toolcall.Result{Result: b}
}

func toolError(text string) toolcall.Result {
	b, _ := jsonrpc.Marshal(map[string]any{"content": []map[string]any{{"type": "text", "text": text}}, "isError": true})
	return toolcall.Result{Result: b}
}

// sync1 returns f wrapped to run at most once.
func sync1(f func()) func() {
	var done bool
	return func() {
		if !done {
			done = true
			f()
		}
	}
}

// waitOrDone waits for wg or ctx.
func waitOrDone(ctx context.Context, wg interface{ Wait() }) {
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

// traceID returns the W3C trace id a call carries in params._meta or its
// traceparent header, or "".
func traceID(call *toolcall.Call) string {
	var tp string
	if meta := call.Meta(); meta != nil {
		_ = json.Unmarshal(jsonrpc.Member(meta, "traceparent"), &tp)
	}
	if tp == "" {
		tp = call.Transport.Headers["Traceparent"]
	}
	// version-traceid-parentid-flags
	parts := strings.Split(tp, "-")
	if len(parts) != 4 || len(parts[1]) != 32 || parts[1] == strings.Repeat("0", 32) {
		return ""
	}
	return parts[1]
}

// retryForward sends an idempotent call again, under the same idempotency
// key, while it timed out or its fate is unknown (rule 16: never for a tool
// that is not idempotent). It returns the last answer and a journal note
// per retry.
func (e *Engine) retryForward(ctx context.Context, call *toolcall.Call, r *Retry, params json.RawMessage, res toolcall.Result, ferr error) (toolcall.Result, []saga.Event, error) {
	var notes []saga.Event
	wait := r.Backoff
	for attempt := 2; attempt <= r.Attempts && retryable(ferr) && ctx.Err() == nil; attempt++ {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return res, notes, ferr
		case <-t.C:
		}
		wait *= 2
		notes = append(notes, note(0, map[string]any{"type": "retry", "attempt": attempt, "after": ferr.Error()}))
		e.log.Info("retrying an idempotent call", "tool", call.Tool, "attempt", attempt, "after", ferr)
		invoke := e.opts.Tracer.WrapForward(call.Upstream, call.Tool, func(ctx context.Context, p json.RawMessage) (toolcall.Result, error) {
			return e.opts.Invoker.Invoke(ctx, call.Upstream, call.Transport.SessionID, "tools/call", p)
		})
		res, ferr = invoke(ctx, params)
	}
	return res, notes, ferr
}

// retryable reports whether a forward's failure leaves the call's fate
// unknown or unsent (the cases worth sending again), as opposed to an
// answer from the tool or a cancellation by the agent.
func retryable(err error) bool {
	return err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}
