package engine

import (
	"context"
	"fmt"

	"github.com/agenthelm/agenthelm/saga"
)

// Rollback undoes a saga on an operator's request: an open or committed
// saga is aborted and unwound ("undo this agent run"), a stuck one is
// retried. It returns when unwinding has done what it can now.
func (e *Engine) Rollback(ctx context.Context, id, by, reason string) (*saga.Saga, error) {
	l, err := e.liveSaga(ctx, id)
	if err != nil {
		return nil, err
	}
	defer e.release(l)
	l.mu.Lock()
	switch l.s.Status {
	case saga.Open, saga.Committed:
		if reason == "" {
			reason = "rolled back by " + by
		}
		err = e.record(ctx, l, saga.Event{Kind: saga.EvAborted, Reason: reason, By: by})
	case saga.Aborting:
	case saga.Stuck:
		err = e.record(ctx, l, saga.Event{Kind: saga.EvRetry, Reason: reason, By: by})
	default:
		err = fmt.Errorf("saga %s is %s: %w", id, l.s.Status, ErrSagaNotOpen)
	}
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	e.runUnwind(ctx, l)
	return e.snapshot(l)
}

// Retry restarts the failed compensations of a stuck saga.
func (e *Engine) Retry(ctx context.Context, id, by string) (*saga.Saga, error) {
	l, err := e.liveSaga(ctx, id)
	if err != nil {
		return nil, err
	}
	defer e.release(l)
	l.mu.Lock()
	if l.s.Status != saga.Stuck && l.s.Status != saga.Aborting {
		st := l.s.Status
		l.mu.Unlock()
		return nil, fmt.Errorf("saga %s is %s; only stuck or aborting sagas can be retried", id, st)
	}
	err = e.record(ctx, l, saga.Event{Kind: saga.EvRetry, By: by})
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	e.runUnwind(ctx, l)
	return e.snapshot(l)
}

// Resolve records that an operator dealt with a needs_human (or stuck)
// step by hand, and lets unwinding go on past it.
func (e *Engine) Resolve(ctx context.Context, id string, step int, by, note string) (*saga.Saga, error) {
	l, err := e.liveSaga(ctx, id)
	if err != nil {
		return nil, err
	}
	defer e.release(l)
	l.mu.Lock()
	st := l.s.Step(step)
	if st == nil {
		l.mu.Unlock()
		return nil, fmt.Errorf("saga %s has no step %d", id, step)
	}
	err = e.record(ctx, l, saga.Event{Kind: saga.EvResolved, Step: step, By: by, Reason: note})
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	e.runUnwind(ctx, l)
	return e.snapshot(l)
}

// Commit ends an open saga successfully (the agenthelm_commit control tool,
// or an operator).
func (e *Engine) Commit(ctx context.Context, id, by string) (*saga.Saga, error) {
	l, err := e.liveSaga(ctx, id)
	if err != nil {
		return nil, err
	}
	defer e.release(l)
	waitOrDone(ctx, &l.inflight)
	l.mu.Lock()
	if l.s.Status != saga.Open {
		st := l.s.Status
		l.mu.Unlock()
		return nil, fmt.Errorf("saga %s is %s: %w", id, st, ErrSagaNotOpen)
	}
	err = e.record(ctx, l, saga.Event{Kind: saga.EvCommitted, By: by})
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return e.snapshot(l)
}

func (e *Engine) snapshot(l *live) (*saga.Saga, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return clone(l.s)
}
