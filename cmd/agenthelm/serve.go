package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/agenthelm/agenthelm/admin"
	"github.com/agenthelm/agenthelm/config"
	"github.com/agenthelm/agenthelm/proxy"
	"github.com/spf13/cobra"
)

func newServeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the sidecar: MCP front door, HTTP tool proxy and admin API",
		Long: `serve runs agenthelm as a sidecar. Agents reach upstream NAME at
http://<listen.mcp>/mcp/NAME (streamable HTTP) or /sse/NAME (legacy SSE).
Health and metrics are on listen.admin. SIGINT or SIGTERM stops it
gracefully: listeners close, open calls get limits.shutdown_grace to finish,
then upstream processes are stopped.`,
		Example: `  agenthelm serve
  agenthelm serve --config agenthelm.yaml --log-level debug
  AGENTHELM_LISTEN_MCP=127.0.0.1:9070 agenthelm serve`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := g.load()
			if err != nil {
				return err
			}
			return serve(cmd.Context(), cfg, log)
		},
	}
}

// load reads the configuration and builds the logger, honouring the global
// flags.
func (g *globals) load() (*config.Config, *slog.Logger, error) {
	cfg, err := loadConfig(g.configPath)
	if err != nil {
		return nil, nil, err
	}
	level, format := cfg.Log.Level, cfg.Log.Format
	if g.logLevel != "" {
		level = g.logLevel
	}
	if g.logFormat != "" {
		format = g.logFormat
	}
	log, err := newLogger(g.stderr, level, format)
	if err != nil {
		return nil, nil, err
	}
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
	return cfg, log, nil
}

func serve(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	specs, err := upstreamSpecs(cfg)
	if err != nil {
		return err
	}
	st, err := openStack(ctx, cfg, log, specs)
	if err != nil {
		return err
	}
	token, err := admin.LoadOrCreateToken(cfg.Admin.Token, cfg.Admin.TokenFile, cfg.Journal.Dir)
	if err != nil {
		_ = st.Close(ctx)
		return err
	}
	if len(specs) == 0 {
		log.Warn("no upstreams configured: the MCP front door will answer 404 until some are added to the config")
	}

	mcpLn, err := listen(cfg.Listen.MCP, "listen.mcp")
	if err != nil {
		_ = st.Close(ctx)
		return err
	}
	adminLn, err := listen(cfg.Listen.Admin, "listen.admin")
	if err != nil {
		mcpLn.Close()
		_ = st.Close(ctx)
		return err
	}
	servers := []*http.Server{
		newHTTPServer(st.proxy.Handler(), log),
		newHTTPServer(admin.Handler(admin.Options{Token: token, Engine: st.engine, Journal: st.journal, Logger: log}), log),
	}
	errc := make(chan error, len(servers))
	for i, ln := range []net.Listener{mcpLn, adminLn} {
		name := []string{"mcp", "admin"}[i]
		log.Info("listening", "listener", name, "addr", ln.Addr().String())
		go func() {
			if err := servers[i].Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s listener: %w", name, err)
				return
			}
			errc <- nil
		}()
	}

	if err := writeRunFile(cfg.Journal.Dir, runFile{PID: os.Getpid(), MCP: mcpLn.Addr().String(), Admin: adminLn.Addr().String()}); err != nil {
		log.Warn("could not record the sidecar's addresses for the CLI", "err", err)
	}
	defer removeRunFile(cfg.Journal.Dir)

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "grace", time.Duration(cfg.Limits.ShutdownGrace).String())
	case runErr = <-errc:
	}
	grace := time.Duration(cfg.Limits.ShutdownGrace)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	// Stop accepting, let open calls finish, then end the upstreams.
	for _, s := range servers {
		s.SetKeepAlivesEnabled(false)
	}
	done := make(chan struct{})
	go func() {
		for _, s := range servers {
			_ = s.Shutdown(sctx)
		}
		close(done)
	}()
	_ = st.Close(sctx)
	<-done
	log.Info("stopped")
	return runErr
}

func listen(addr, field string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return ln, nil
}

func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// adminHandler serves only health checks; the demo uses it until it runs
// on the full stack.
func adminHandler(*proxy.Proxy) http.Handler { return admin.Handler(admin.Options{}) }
