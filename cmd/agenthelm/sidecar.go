package main

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"

	"github.com/agenthelm/agenthelm/admin"
	"github.com/agenthelm/agenthelm/config"
)

// sidecar is agenthelm serving in this process: the stack (journal, saga
// engine, proxy) behind the MCP front door, and the admin API. serve and
// demo both run it.
type sidecar struct {
	stack   *stack
	servers []*http.Server
	lns     []net.Listener // mcp, admin
	httpLn  net.Listener   // the HTTP tool proxy's; nil when it does not listen
	served  chan error
	dataDir string
}

// startSidecar opens the stack (recovering unfinished sagas before any
// traffic), listens on cfg.Listen.MCP and cfg.Listen.Admin, and on
// cfg.Listen.HTTP when there are REST upstreams, records the addresses for
// the CLI, logs one "listening" line per listener and serves.
func startSidecar(ctx context.Context, cfg *config.Config, log *slog.Logger) (*sidecar, error) {
	specs, err := upstreamSpecs(cfg)
	if err != nil {
		return nil, err
	}
	st, err := openStack(ctx, cfg, log, specs)
	if err != nil {
		return nil, err
	}
	rest := st.http.UpstreamNames()
	if len(specs) == 0 && len(rest) == 0 {
		log.Warn("no MCP upstreams configured: the MCP front door answers 404 until some are added to the config")
	}
	token, err := admin.LoadOrCreateToken(cfg.Admin.Token, cfg.Admin.TokenFile, cfg.Journal.Dir)
	if err != nil {
		_ = st.Close(ctx)
		return nil, err
	}
	s := &sidecar{stack: st, served: make(chan error, 3), dataDir: cfg.Journal.Dir}
	st.startChecks(st.proxy.UpstreamNames())
	for _, l := range []struct {
		addr, field string
		h           http.Handler
	}{
		{cfg.Listen.MCP, "listen.mcp", st.proxy.Handler()},
		{cfg.Listen.Admin, "listen.admin", admin.PolicyHealth(admin.Handler(admin.Options{Token: token, Engine: st.engine, Journal: st.journal, Logger: log,
			Extra: withMetrics(approvalRoutes(st, token, log), st), Public: append(slices.Clone(admin.ApprovalPatterns), metricsRoute)}), st.policy)},
	} {
		ln, err := listen(l.addr, l.field)
		if err != nil {
			for _, ln := range s.lns {
				ln.Close()
			}
			_ = st.Close(ctx)
			return nil, err
		}
		s.lns, s.servers = append(s.lns, ln), append(s.servers, newHTTPServer(l.h, log))
	}
	switch {
	case len(rest) == 0:
		log.Debug("no REST upstreams: the HTTP tool proxy does not listen")
	case cfg.Listen.HTTP == "":
		log.Warn("listen.http is empty: agents cannot reach the REST upstreams (compensations still can)", "upstreams", rest)
	default:
		if s.httpLn, err = listen(cfg.Listen.HTTP, "listen.http"); err != nil {
			for _, ln := range s.lns {
				ln.Close()
			}
			_ = st.Close(ctx)
			return nil, err
		}
	}
	// The CLI finds the admin API through the run file: write it before
	// the "listening" lines that tell scripts the sidecar is up.
	rf := runFile{PID: os.Getpid(), MCP: s.lns[0].Addr().String(), Admin: s.adminAddr()}
	if s.httpLn != nil {
		rf.HTTP = s.httpLn.Addr().String()
	}
	if err := writeRunFile(s.dataDir, rf); err != nil {
		log.Warn("could not record the sidecar's addresses for the CLI", "err", err)
	}
	if s.httpLn != nil {
		log.Info("listening", "listener", "http", "addr", s.httpLn.Addr().String(), "upstreams", rest)
		go func() { s.served <- st.http.Serve(s.httpLn) }()
	}
	for i, ln := range s.lns {
		log.Info("listening", "listener", []string{"mcp", "admin"}[i], "addr", ln.Addr().String())
		srv := s.servers[i]
		go func() {
			err := srv.Serve(ln)
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			s.served <- err
		}()
	}
	return s, nil
}

// URL is the sidecar's streamable HTTP endpoint for upstream name.
func (s *sidecar) URL(name string) string {
	return "http://" + s.lns[0].Addr().String() + "/mcp/" + name
}

func (s *sidecar) adminAddr() string { return s.lns[1].Addr().String() }

// Close stops accepting, lets open calls finish until ctx is done, then
// closes the stack (proxy and its upstream processes, engine, journal).
func (s *sidecar) Close(ctx context.Context) error {
	var errs []error
	for _, srv := range s.servers {
		srv.SetKeepAlivesEnabled(false)
	}
	// GET and legacy SSE streams end only when told: Shutdown would
	// otherwise wait for them until ctx's deadline.
	s.stack.proxy.CloseStreams()
	httpClosed := make(chan error, 1)
	if s.httpLn != nil {
		// Its held and in-flight calls get until ctx's deadline too.
		go func() { httpClosed <- s.stack.http.Close(ctx) }()
	} else {
		httpClosed <- nil
	}
	for _, srv := range s.servers {
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
			errs = append(errs, err)
		}
	}
	if err := <-httpClosed; err != nil {
		errs = append(errs, err)
	}
	listeners := len(s.servers)
	if s.httpLn != nil {
		listeners++
	}
	for range listeners {
		if err := <-s.served; err != nil {
			errs = append(errs, err)
		}
	}
	s.servers, s.httpLn = nil, nil
	errs = append(errs, s.stack.Close(ctx))
	removeRunFile(s.dataDir)
	return errors.Join(errs...)
}

// metricsRoute serves Prometheus metrics on the admin listener, without the
// token: scrapers rarely carry one, and metrics hold no arguments or secrets.
const metricsRoute = "GET /metrics"

func withMetrics(extra map[string]http.Handler, st *stack) map[string]http.Handler {
	if extra == nil {
		extra = map[string]http.Handler{}
	}
	extra[metricsRoute] = st.telemetry.MetricsHandler()
	maps.Copy(extra, admin.TraceRoutes(st.journal))
	return extra
}
