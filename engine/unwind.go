package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agenthelm/agenthelm/internal/fault"
	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
	"github.com/agenthelm/agenthelm/proxy/upstream"
	"github.com/agenthelm/agenthelm/saga"
	"github.com/agenthelm/agenthelm/telemetry"
	"github.com/agenthelm/agenthelm/toolcall"
)

// runUnwind drives an aborting saga until Plan has nothing more to do now:
// it waits for the saga's calls in flight (rule 14), then performs each
// planned action, journaling before and after (rules 9, 12, 13). Only one
// goroutine unwinds a saga at a time (rule 18); a second caller returns
// at once. A scheduled retry re-enters it from a timer.
func (e *Engine) runUnwind(ctx context.Context, l *live) {
	l.mu.Lock()
	if l.unwinding {
		l.mu.Unlock()
		return
	}
	l.unwinding = true
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.unwinding = false
		l.mu.Unlock()
		e.evictIfDone(l)
	}()

	e.withdrawApprovals(l.id())
	waitOrDone(ctx, &l.inflight)
	ctx, span := e.opts.Tracer.StartInternal(ctx, telemetry.SpanUnwind, telemetry.SagaIDKey.String(l.id()))
	defer span.End()
	for ctx.Err() == nil {
		l.mu.Lock()
		acts := l.s.Plan(e.opts.Retry, e.opts.Now())
		if len(acts) == 0 {
			l.mu.Unlock()
			return
		}
		a := acts[0]
		id := l.s.ID
		var err error
		switch a.Kind {
		case saga.ActWait:
			e.scheduleRetry(l, a.At)
			l.mu.Unlock()
			return
		case saga.ActCompensate:
			st := l.s.Step(a.Step)
			err = e.record(ctx, l, saga.Event{Kind: saga.EvCompStarted, Step: a.Step, Attempt: a.Attempt})
			l.mu.Unlock()
			if err != nil {
				break
			}
			fault.Point("mid-unwind")
			cctx, cspan := e.opts.Tracer.StartCompensation(ctx, id, st.N, st.Tool,
				telemetry.SpanContextFromTraceparent(st.Traceparent), telemetry.CompensationAttemptKey.Int(a.Attempt))
			fin := e.compensate(cctx, id, st, a.Attempt, l)
			fault.Point("after-compensate")
			outcome := "ok"
			var cerr error
			if !fin.OK {
				outcome, cerr = "failed", errors.New(fin.Error)
				if fin.Status != "" {
					outcome = fin.Status
				}
			}
			cspan.SetAttributes(telemetry.CompensationOutcomeKey.String(outcome))
			e.opts.Tracer.End(cspan, cerr)
			e.opts.Tracer.Metrics().CompensationFinished(ctx, st.Upstream, st.Tool, outcome, a.Attempt)
			l.mu.Lock()
			err = e.record(context.WithoutCancel(ctx), l, fin)
			l.mu.Unlock()
			if fin.OK {
				e.log.Info("step compensated", "saga", id, "step", a.Step, "tool", st.Tool, "by", st.Compensator.Tool)
			} else {
				e.log.Warn("compensation failed", "saga", id, "step", a.Step, "tool", st.Tool, "attempt", a.Attempt, "err", fin.Error)
			}
		case saga.ActMarkNeedsHuman:
			err = e.record(ctx, l, saga.Event{Kind: saga.EvCompFinished, Step: a.Step, Status: string(saga.CompNeedsHuman),
				Error: "the step's outcome is unknown and its compensation needs the result"})
			l.mu.Unlock()
		case saga.ActMarkIrreversible:
			err = e.record(ctx, l, saga.Event{Kind: saga.EvCompFinished, Step: a.Step, Status: string(saga.CompIrreversible),
				Error: "no compensator: this step cannot be undone"})
			l.mu.Unlock()
		case saga.ActSkip:
			err = e.record(ctx, l, saga.Event{Kind: saga.EvCompFinished, Step: a.Step, Status: string(saga.CompSkipped),
				Error: "given up after the maximum attempts (continue_past_failure)"})
			l.mu.Unlock()
		case saga.ActSetStatus:
			err = e.record(ctx, l, saga.Event{Kind: saga.EvStatus, Status: string(a.Status), By: "engine"})
			l.mu.Unlock()
			switch a.Status {
			case saga.Stuck:
				e.log.Error("saga stuck: compensation keeps failing; see `agenthelm sagas show` and `sagas retry`", "saga", id)
			case saga.NeedsHuman:
				e.log.Error("saga needs a human: a step's outcome is unknown; see `agenthelm sagas show`", "saga", id)
			default:
				e.log.Info("saga finished", "saga", id, "status", a.Status)
			}
		default:
			l.mu.Unlock()
			err = fmt.Errorf("unknown action %q", a.Kind)
		}
		if err != nil {
			e.log.Error("unwinding stopped: journal write failed; it resumes after a restart", "saga", id, "err", err)
			return
		}
	}
}

// withdrawApprovals rejects the saga's pending approvals when it starts
// unwinding: their calls could no longer become steps, and unwinding waits
// for the saga's calls in flight, held ones included, which would
// otherwise keep it waiting until the approvals expire.
func (e *Engine) withdrawApprovals(sagaID string) {
	if e.opts.Approvals == nil {
		return
	}
	for _, req := range e.opts.Approvals.Pending() {
		if req.Saga == sagaID {
			_, _ = e.opts.Approvals.Decide(req.ID, false, "agenthelm", "the saga is being rolled back")
		}
	}
}

// compensate runs one compensation attempt and returns the event that
// records how it ended.
func (e *Engine) compensate(ctx context.Context, sagaID string, st *saga.Step, attempt int, l *live) saga.Event {
	fin := saga.Event{Kind: saga.EvCompFinished, Step: st.N, Attempt: attempt}
	fail := func(err error) saga.Event {
		fin.Error = err.Error()
		fin.NextAttempt = e.opts.Now().Add(e.opts.Retry.Backoff(attempt))
		return fin
	}
	c := st.Compensator
	actions := append([]saga.Call{{Tool: c.Tool, Args: c.Args}}, c.Then...)
	args, result := l.unmasked(st)
	for i, a := range actions {
		res, err := e.invokeCompensation(ctx, sagaID, st, i, a, args, result)
		if errors.Is(err, ErrCannotUndo) {
			fin.Status, fin.Error = string(saga.CompNeedsHuman), err.Error()
			return fin
		}
		if err != nil {
			return fail(err)
		}
		fin.Result, _ = e.redact(stepResultMember(st), res)
	}
	fin.OK = true
	return fin
}

// stepResultMember is Call.ResultMember for a journaled step: a REST
// upstream's steps record transport "http".
func stepResultMember(st *saga.Step) string {
	if st.Launch != nil && st.Launch.Transport == "http" {
		return "response"
	}
	return "result"
}

// invokeCompensation runs the i-th call of a step's compensation under its
// own idempotency key, derived from the saga, the step and i only (rule 12).
func (e *Engine) invokeCompensation(ctx context.Context, sagaID string, st *saga.Step, i int, a saga.Call, stepArgs, stepResult json.RawMessage) (json.RawMessage, error) {
	args, err := e.opts.Eval(a.Args, stepArgs, stepResult, st.Capture)
	if err != nil {
		return nil, fmt.Errorf("build %s arguments: %w", a.Tool, err)
	}
	purpose := "compensate"
	if i > 0 {
		purpose = fmt.Sprintf("compensate/%d", i)
	}
	key, _ := jsonrpc.Marshal(saga.IdempotencyKey(sagaID, st.N, purpose))
	meta, _ := jsonrpc.SetMember(nil, MetaIdempotencyKey, key)
	params, _ := jsonrpc.Marshal(map[string]any{"name": a.Tool, "arguments": args, "_meta": meta})
	cctx, cancel := context.WithTimeout(ctx, e.opts.CallTimeout)
	defer cancel()
	invoke := e.opts.Tracer.WrapForward(st.Compensator.Upstream, a.Tool, func(ctx context.Context, p json.RawMessage) (toolcall.Result, error) {
		return e.opts.Invoker.Invoke(ctx, st.Compensator.Upstream, st.Session, "tools/call", p)
	})
	res, err := invoke(cctx, params)
	if si, ok := e.opts.Invoker.(SpecInvoker); ok && errors.Is(err, toolcall.ErrUnknownUpstream) &&
		st.Launch != nil && st.Compensator.Upstream == st.Upstream {
		res, err = si.InvokeSpec(cctx, upstream.Spec{Name: st.Upstream, Transport: st.Launch.Transport,
			Command: st.Launch.Command, Dir: st.Launch.Dir, URL: st.Launch.URL}, st.Launch.EnvNames, "tools/call", params)
	}
	switch {
	case err != nil:
		return nil, err
	case res.Error != nil:
		return nil, fmt.Errorf("%s: %s", a.Tool, res.Error.Message)
	case res.IsToolError():
		return nil, fmt.Errorf("%s returned an error: %s", a.Tool, resultText(res.Result))
	}
	return res.Result, nil
}

// scheduleRetry resumes unwinding at t. The time is also in the journal
// (the head's next attempt), so a restart keeps the schedule. Caller holds
// l.mu.
func (e *Engine) scheduleRetry(l *live, t time.Time) {
	if l.retry != nil {
		l.retry.Stop()
	}
	d := max(t.Sub(e.opts.Now()), 0)
	l.retry = time.AfterFunc(d, func() {
		e.wg.Add(1)
		defer e.wg.Done()
		if e.ctx.Err() == nil {
			e.runUnwind(e.ctx, l)
		}
	})
}
