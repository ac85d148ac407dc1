package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/agenthelm/agenthelm/journal"
	"github.com/agenthelm/agenthelm/saga"
)

// Recover resumes every saga a previous run left unfinished (rule 17). It
// must run before the proxy accepts traffic. Steps with an intent and no
// outcome become in_doubt (rule 5); aborting sagas resume unwinding in the
// background; sagas left open are aborted once OpenGrace has passed since
// their last event (their agent may be gone). Sagas waiting for a human
// (needs_human, stuck) are left alone.
func (e *Engine) Recover(ctx context.Context) error {
	heads, err := e.opts.Journal.NonTerminal(ctx)
	if err != nil {
		return fmt.Errorf("recover: list unfinished sagas: %w", err)
	}
	var errs []error
	stuck := 0
	for _, h := range heads {
		if h.Status == string(saga.Stuck) {
			stuck++
		}
	}
	e.stuck.Store(int64(stuck))
	e.opts.Tracer.Metrics().SetStuckSagas(ctx, stuck)
	for _, h := range heads {
		if err := e.recoverOne(ctx, h); err != nil {
			errs = append(errs, err)
		}
	}
	if len(heads) > 0 {
		e.log.Info("recovery started", "sagas", len(heads), "errors", len(errs))
	}
	return errors.Join(errs...)
}

func (e *Engine) recoverOne(ctx context.Context, h journal.Head) error {
	l, err := e.liveSaga(ctx, h.Saga)
	if err != nil {
		return fmt.Errorf("recover saga %s: %w", h.Saga, err)
	}
	defer e.release(l)
	l.mu.Lock()
	var evs []saga.Event
	for _, st := range l.s.Steps {
		if st.Status == saga.InFlight {
			evs = append(evs, saga.Event{Kind: saga.EvOutcome, Step: st.N, Status: string(saga.InDoubt),
				Error: "agenthelm stopped before the call's outcome was recorded"})
		}
	}
	if len(evs) > 0 {
		if err := e.record(ctx, l, evs...); err != nil {
			l.mu.Unlock()
			return fmt.Errorf("recover saga %s: %w", h.Saga, err)
		}
	}
	status, updated := l.s.Status, l.s.Updated
	l.mu.Unlock()

	switch status {
	case saga.Aborting:
		e.goUnwind(l)
	case saga.Open:
		wait := max(e.opts.OpenGrace-e.opts.Now().Sub(updated), 0)
		e.log.Info("saga left open by a restart: it is aborted after the grace period", "saga", h.Saga, "in", wait.Round(time.Second).String())
		l.mu.Lock()
		l.idle = time.AfterFunc(wait, func() { e.abortOpen(l, "agenthelm restarted while the saga was open") })
		l.mu.Unlock()
	}
	return nil
}

// goUnwind unwinds a saga in the background.
func (e *Engine) goUnwind(l *live) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.runUnwind(e.ctx, l)
	}()
}

// abortOpen aborts a saga that is still open and unwinds it.
func (e *Engine) abortOpen(l *live, reason string) {
	l.mu.Lock()
	if l.s.Status != saga.Open || e.ctx.Err() != nil {
		l.mu.Unlock()
		return
	}
	err := e.record(e.ctx, l, saga.Event{Kind: saga.EvAborted, Reason: reason, By: "engine"})
	l.mu.Unlock()
	if err != nil {
		e.log.Error("abort not journaled", "saga", l.s.ID, "err", err)
		return
	}
	e.goUnwind(l)
}
