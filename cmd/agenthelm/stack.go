package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/agenthelm/agenthelm/approvals"
	"github.com/agenthelm/agenthelm/config"
	"github.com/agenthelm/agenthelm/engine"
	"github.com/agenthelm/agenthelm/internal/buildinfo"
	"github.com/agenthelm/agenthelm/journal"
	"github.com/agenthelm/agenthelm/policies"
	"github.com/agenthelm/agenthelm/policy"
	"github.com/agenthelm/agenthelm/proxy"
	"github.com/agenthelm/agenthelm/proxy/httptool"
	"github.com/agenthelm/agenthelm/proxy/upstream"
	"github.com/agenthelm/agenthelm/saga"
	"github.com/agenthelm/agenthelm/telemetry"
	"github.com/agenthelm/agenthelm/toolcall"
)

// stack is agenthelm's core assembled: the journal, the saga engine and the
// MCP proxy, wired so that every tool call is a journaled saga step. serve,
// wrap and demo all run it; they differ in their front doors.
type stack struct {
	cfg       *config.Config
	log       *slog.Logger
	journal   *journal.Journal
	engine    *engine.Engine
	proxy     *proxy.Proxy
	http      *httptool.Proxy // REST upstreams: the HTTP tool proxy, and its Invoke for compensations
	rules     rules
	telemetry *telemetry.Providers
	policy    *policy.Engine
	// policyTmp holds the built-in policies when they are used.
	policyTmp string
	broker    *approvals.Broker

	bgCtx context.Context // background work (checks) ends with it
	stop  context.CancelFunc
	bg    sync.WaitGroup
}

// openStack opens the journal in cfg.Journal.Dir, recovers unfinished sagas
// (before any traffic, rule 17) and returns the assembled core.
func openStack(ctx context.Context, cfg *config.Config, log *slog.Logger, specs map[string]upstream.Spec) (*stack, error) {
	notifier, err := approvalNotifier(cfg, log)
	if err != nil {
		return nil, err
	}
	if cfg.Journal.Sync == config.SyncNone {
		log.Warn("journal.sync is none: acknowledged calls survive a crash of agenthelm but not of the machine; use it for benchmarks only")
	}
	red, err := telemetry.NewRedactor(cfg.Redaction)
	if err != nil {
		return nil, fmt.Errorf("redaction: %w", err)
	}
	tel, err := telemetry.Setup(ctx, cfg.Telemetry, telemetry.Options{
		ServiceVersion: buildinfo.Get().Version, Logger: log.With("component", "telemetry"), Redactor: red,
	})
	if err != nil {
		return nil, err
	}
	j, err := journal.Open(ctx, journal.Options{
		OnCommit:  tel.Metrics().JournalCommit,
		Dir:       cfg.Journal.Dir,
		Sync:      cfg.Journal.Sync != config.SyncNone,
		Retention: time.Duration(cfg.Journal.Retention),
		Logger:    log.With("component", "journal"),
	})
	if err != nil {
		_ = tel.Shutdown(ctx)
		return nil, fmt.Errorf("journal.dir %s: %w", cfg.Journal.Dir, err)
	}
	rules, err := newRules(cfg)
	if err != nil {
		_ = j.Close(ctx)
		_ = tel.Shutdown(ctx)
		return nil, err
	}
	s := &stack{cfg: cfg, log: log, journal: j, rules: rules, telemetry: tel}
	if s.policy, s.policyTmp, err = openPolicy(ctx, cfg, log); err != nil {
		s.removePolicyTmp()
		_ = j.Close(ctx)
		_ = tel.Shutdown(ctx)
		return nil, err
	}
	s.broker = approvals.New(approvals.Options{Logger: log.With("component", "approvals"), Notifier: notifier})
	unwindOn := map[string]bool{}
	for _, k := range cfg.Saga.UnwindOn {
		unwindOn[k] = true
	}
	comp := cfg.Saga.Compensation
	s.engine = engine.New(engine.Options{
		Journal: j,
		Invoker: lazyInvoker{s},
		Rules:   rules,
		Eval:    evalExpr,
		Logger:  log.With("component", "engine"),
		Retry: saga.Policy{
			MaxAttempts:         comp.MaxAttempts,
			InitialBackoff:      time.Duration(comp.InitialBackoff),
			MaxBackoff:          time.Duration(comp.MaxBackoff),
			ContinuePastFailure: comp.ContinuePastFailure,
		},
		Gate:              s.policy,
		Approvals:         s.broker,
		ApprovalTimeout:   time.Duration(cfg.Approvals.Timeout),
		MaxHold:           time.Duration(cfg.Approvals.MaxHold),
		UnwindOnDenial:    unwindOn[config.FailDenied],
		UnwindOnRejection: unwindOn[config.FailRejected],
		ControlTools:      cfg.Saga.ControlTools,
		Tracer:            tel.Tracer(),
		Redact:            red.Member,
		Describe:          describeUpstreams(specs, cfg),
		Scope:             cfg.Saga.Scope,
		AgentHeader:       cfg.Saga.AgentHeader,
		IdleCommit:        time.Duration(cfg.Saga.IdleCommit),
		UnwindOn:          cfg.Saga.UnwindOn,
		OpenGrace:         time.Duration(cfg.Saga.OpenGrace),
		CallTimeout:       time.Duration(cfg.Limits.CallTimeout),
	})
	if err := tel.Metrics().ObserveSagasInMemory(s.engine.InMemory); err != nil {
		log.Warn("metric agenthelm.sagas.in_memory not registered", "err", err)
	}
	var extraTools json.RawMessage
	if cfg.Saga.ControlTools {
		extraTools = engine.ControlTools
	}
	var callHeaders []string
	if cfg.Saga.AgentHeader != "" {
		callHeaders = append(callHeaders, cfg.Saga.AgentHeader)
	}
	// Both front doors hand their calls to the one interceptor, and
	// identify agents by their tokens the same way.
	interceptor := telemetry.ServerInterceptor(s.engine, tel.Tracer())
	verify, err := agentVerifier(cfg)
	if err != nil {
		_ = s.engine.Close(ctx)
		s.removePolicyTmp()
		_ = j.Close(ctx)
		_ = tel.Shutdown(ctx)
		return nil, err
	}
	s.proxy = proxy.New(proxy.Options{
		Upstreams:    specs,
		Interceptor:  interceptor,
		Logger:       log,
		MaxBodyBytes: int64(cfg.Limits.MaxBodyBytes),
		CallTimeout:  time.Duration(cfg.Limits.CallTimeout),
		CallHeaders:  callHeaders,
		OnSessionEnd: s.engine.EndScope,
		ExtraTools:   extraTools,
		VerifyToken:  verify,
	})
	if s.http, err = newHTTPTool(cfg, log, interceptor, verify); err != nil {
		_ = s.proxy.Close(ctx)
		_ = s.engine.Close(ctx)
		s.removePolicyTmp()
		_ = j.Close(ctx)
		_ = tel.Shutdown(ctx)
		return nil, err
	}
	if err := s.engine.Recover(ctx); err != nil {
		// Sagas that cannot be recovered are reported; the others go on.
		log.Error("recovery incomplete", "err", err)
	}
	s.bgCtx, s.stop = context.WithCancel(context.WithoutCancel(ctx))
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		if err := s.policy.Watch(s.bgCtx); err != nil && s.bgCtx.Err() == nil {
			log.Warn("policy files are not watched: reloads need a restart", "err", err)
		}
	}()
	return s, nil
}

// Close stops the proxy (open calls get until ctx's deadline), then the
// engine, then flushes and closes the journal.
func (s *stack) Close(ctx context.Context) error {
	s.stop()
	s.bg.Wait()
	perr := s.proxy.Close(ctx)
	herr := s.http.Close(ctx)
	eerr := s.engine.Close(ctx)
	jerr := s.journal.Close(context.WithoutCancel(ctx))
	s.removePolicyTmp()
	terr := s.telemetry.Shutdown(context.WithoutCancel(ctx))
	return errors.Join(perr, herr, eerr, jerr, terr)
}

// lazyInvoker lets the engine call upstreams through the proxies, which
// are built after the engine (they need it as their interceptor): REST
// upstreams through the HTTP tool proxy, MCP servers through the MCP proxy.
type lazyInvoker struct{ s *stack }

func (l lazyInvoker) InvokeSpec(ctx context.Context, spec upstream.Spec, envNames []string, method string, params json.RawMessage) (toolcall.Result, error) {
	if spec.Transport == restTransport {
		return l.s.http.InvokeSpec(ctx, spec, envNames, method, params)
	}
	return l.s.proxy.InvokeSpec(ctx, spec, envNames, method, params)
}

// restTransport is how the journal records a REST upstream (saga.Launch).
const restTransport = string(config.KindREST)

// describeUpstreams says how each upstream is reached, for the journal
// (rule 29): commands, directories, URLs (a REST API's base URL, with
// transport "http") and the names (never the values) of the environment
// variables a stdio server is given.
func describeUpstreams(specs map[string]upstream.Spec, cfg *config.Config) func(string) *saga.Launch {
	launches := map[string]*saga.Launch{}
	for name, sp := range specs {
		l := &saga.Launch{Transport: sp.Transport, Command: sp.Command, Dir: sp.Dir, URL: sp.URL}
		for k := range cfg.Upstreams[name].Env {
			l.EnvNames = append(l.EnvNames, k)
		}
		slices.Sort(l.EnvNames)
		launches[name] = l
	}
	for name, u := range cfg.Upstreams {
		if u.Kind() == config.KindREST {
			launches[name] = &saga.Launch{Transport: restTransport, URL: u.HTTP}
		}
	}
	return func(name string) *saga.Launch { return launches[name] }
}

func (l lazyInvoker) Invoke(ctx context.Context, up, session, method string, params json.RawMessage) (toolcall.Result, error) {
	if l.s.http != nil && l.s.http.Has(up) {
		return l.s.http.Invoke(ctx, up, session, method, params)
	}
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

// openPolicy loads the policy directory. When none is configured and
// ./policies does not exist, the shipped policies built into the binary
// are used (they hold calls that cannot be undone for approval).
func openPolicy(ctx context.Context, cfg *config.Config, log *slog.Logger) (e *policy.Engine, tmp string, err error) {
	if cfg.Policy.Bundle.URL != "" {
		src, err := bundleSource(cfg)
		if err != nil {
			return nil, "", err
		}
		e, err = policy.New(ctx, policy.Options{
			Bundle: src, Mode: cfg.Policy.Mode, TestOnReload: cfg.Policy.TestOnReload,
			Logger: log.With("component", "policy"),
		})
		if err != nil {
			return nil, "", fmt.Errorf("policy.bundle: %w", err)
		}
		return e, "", nil
	}
	dir := cfg.Policy.Dir
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) && dir == config.Default().Policy.Dir {
		if tmp, err = os.MkdirTemp("", "agenthelm-policies-"); err != nil {
			return nil, "", err
		}
		if dir, err = policies.WriteTo(tmp); err != nil {
			return nil, tmp, fmt.Errorf("built-in policies: %w", err)
		}
		log.Info("no policy directory: using the built-in policies", "dir", cfg.Policy.Dir)
	}
	e, err = policy.New(ctx, policy.Options{
		Dir: dir, Mode: cfg.Policy.Mode, TestOnReload: cfg.Policy.TestOnReload,
		Logger: log.With("component", "policy"),
	})
	if err != nil {
		return nil, tmp, fmt.Errorf("policy.dir: %w", err)
	}
	return e, tmp, nil
}

// bundleSource is the policy bundle server of the configuration, with its
// headers resolved and its key read. The last activated bundle is kept in
// the journal directory.
func bundleSource(cfg *config.Config) (*policy.BundleSource, error) {
	b := cfg.Policy.Bundle
	headers, err := b.ResolvedHeaders()
	if err != nil {
		return nil, err
	}
	src := &policy.BundleSource{URL: b.URL, Headers: headers, Poll: time.Duration(b.Poll), KeyID: b.KeyID, Algorithm: b.Algorithm,
		CacheFile: filepath.Join(cfg.Journal.Dir, "policy-bundle.tar.gz"), MaxBytes: int64(cfg.Limits.MaxBodyBytes) * 8}
	if b.PublicKeyFile != "" {
		key, err := os.ReadFile(b.PublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("policy.bundle.public_key_file: %w", err)
		}
		src.PublicKey = string(key)
	}
	return src, nil
}

func (s *stack) removePolicyTmp() {
	if s.policyTmp != "" {
		_ = os.RemoveAll(s.policyTmp)
	}
}
