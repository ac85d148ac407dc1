package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/agenthelm/agenthelm/config"
	"github.com/agenthelm/agenthelm/engine"
	"github.com/agenthelm/agenthelm/journal"
	"github.com/agenthelm/agenthelm/proxy"
	"github.com/agenthelm/agenthelm/proxy/upstream"
	"github.com/agenthelm/agenthelm/saga"
	"github.com/agenthelm/agenthelm/toolcall"
)

// stack is agenthelm's core assembled: the journal, the saga engine and the
// MCP proxy, wired so that every tool call is a journaled saga step. serve,
// wrap and demo all run it; they differ in their front doors.
type stack struct {
	cfg     *config.Config
	log     *slog.Logger
	journal *journal.Journal
	engine  *engine.Engine
	proxy   *proxy.Proxy
	rules   rules

	bgCtx context.Context // background work (checks) ends with it
	stop  context.CancelFunc
	bg    sync.WaitGroup
}

// openStack opens the journal in cfg.Journal.Dir, recovers unfinished sagas
// (before any traffic, rule 17) and returns the assembled core.
func openStack(ctx context.Context, cfg *config.Config, log *slog.Logger, specs map[string]upstream.Spec) (*stack, error) {
	if cfg.Journal.Sync == config.SyncNone {
		log.Warn("journal.sync is none: acknowledged calls survive a crash of agenthelm but not of the machine; use it for benchmarks only")
	}
	j, err := journal.Open(ctx, journal.Options{
		Dir:       cfg.Journal.Dir,
		Sync:      cfg.Journal.Sync != config.SyncNone,
		Retention: time.Duration(cfg.Journal.Retention),
		Logger:    log.With("component", "journal"),
	})
	if err != nil {
		return nil, fmt.Errorf("journal.dir %s: %w", cfg.Journal.Dir, err)
	}
	rules, err := newRules(cfg)
	if err != nil {
		_ = j.Close(ctx)
		return nil, err
	}
	s := &stack{cfg: cfg, log: log, journal: j, rules: rules}
	comp := cfg.Saga.Compensation
	s.engine = engine.New(engine.Options{
		Journal: j,
		Invoker: lazyInvoker{s},
		Rules:   rules,
		Eval:    evalExpr,
		Logger:  log.With("component", "engine"),
		Policy: saga.Policy{
			MaxAttempts:         comp.MaxAttempts,
			InitialBackoff:      time.Duration(comp.InitialBackoff),
			MaxBackoff:          time.Duration(comp.MaxBackoff),
			ContinuePastFailure: comp.ContinuePastFailure,
		},
		Scope:       cfg.Saga.Scope,
		AgentHeader: cfg.Saga.AgentHeader,
		IdleCommit:  time.Duration(cfg.Saga.IdleCommit),
		UnwindOn:    cfg.Saga.UnwindOn,
		OpenGrace:   time.Duration(cfg.Saga.OpenGrace),
		CallTimeout: time.Duration(cfg.Limits.CallTimeout),
	})
	var callHeaders []string
	if cfg.Saga.AgentHeader != "" {
		callHeaders = append(callHeaders, cfg.Saga.AgentHeader)
	}
	s.proxy = proxy.New(proxy.Options{
		Upstreams:    specs,
		Interceptor:  s.engine,
		Logger:       log,
		MaxBodyBytes: int64(cfg.Limits.MaxBodyBytes),
		CallTimeout:  time.Duration(cfg.Limits.CallTimeout),
		CallHeaders:  callHeaders,
		OnSessionEnd: s.engine.EndScope,
	})
	if err := s.engine.Recover(ctx); err != nil {
		// Sagas that cannot be recovered are reported; the others go on.
		log.Error("recovery incomplete", "err", err)
	}
	s.bgCtx, s.stop = context.WithCancel(context.WithoutCancel(ctx))
	return s, nil
}

// Close stops the proxy (open calls get until ctx's deadline), then the
// engine, then flushes and closes the journal.
func (s *stack) Close(ctx context.Context) error {
	s.stop()
	s.bg.Wait()
	perr := s.proxy.Close(ctx)
	eerr := s.engine.Close(ctx)
	jerr := s.journal.Close(context.WithoutCancel(ctx))
	return errors.Join(perr, eerr, jerr)
}

// lazyInvoker lets the engine call upstreams through the proxy, which is
// built after the engine (the proxy needs the engine as its interceptor).
type lazyInvoker struct{ s *stack }

func (l lazyInvoker) Invoke(ctx context.Context, up, session, method string, params json.RawMessage) (toolcall.Result, error) {
	return l.s.proxy.Invoke(ctx, up, session, method, params)
}

// startChecks checks the upstreams' tools in the background (see
// checkUpstreams). The sidecar does it; wrap does not, since that would
// start a second copy of the wrapped server.
func (s *stack) startChecks(names []string) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.checkUpstreams(s.bgCtx, names)
	}()
}
