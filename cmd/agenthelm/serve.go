package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/agenthelm/agenthelm/config"
	"github.com/spf13/cobra"
)

func newServeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the sidecar: MCP front door, HTTP tool proxy and admin API",
		Long: `serve runs agenthelm as a sidecar. Agents reach upstream NAME at
http://<listen.mcp>/mcp/NAME (streamable HTTP) or /sse/NAME (legacy SSE),
and a REST upstream NAME at http://<listen.http>/NAME/<path>, where the
routes in agenthelm.yaml say which requests are tool calls.
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
	sc, err := startSidecar(ctx, cfg, log)
	if err != nil {
		return err
	}
	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "grace", time.Duration(cfg.Limits.ShutdownGrace).String())
	case runErr = <-sc.served:
		sc.served <- nil // Close counts one answer per listener
	}
	// Stop accepting, let open calls finish within the grace, then end the
	// upstreams and flush the journal.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Duration(cfg.Limits.ShutdownGrace))
	defer cancel()
	err = sc.Close(sctx)
	log.Info("stopped")
	return errors.Join(runErr, err)
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
