package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agenthelm/agenthelm/config"
	"github.com/agenthelm/agenthelm/proxy"
	"github.com/agenthelm/agenthelm/proxy/upstream"
	"github.com/spf13/cobra"
)

// envAgentToken holds the bearer token wrap --upstream presents to the
// sidecar on the agent's behalf.
const envAgentToken = "AGENTHELM_AGENT_TOKEN"

func newWrapCmd(g *globals) *cobra.Command {
	var upstreamName, name string
	cmd := &cobra.Command{
		Use:   "wrap [--config FILE] [--name NAME] -- CMD [ARGS...] | wrap --upstream NAME",
		Short: "Put agenthelm between an agent and a stdio MCP server",
		Long: `wrap speaks MCP over its own stdin and stdout, so an agent adopts agenthelm by
changing only the command in its MCP configuration.

With -- CMD ARGS it runs CMD as the upstream MCP server itself (standalone).
Tool rules for it are read from upstreams.NAME.tools in the config, where
NAME is --name or, by default, derived from the command.

With --upstream NAME it bridges to upstream NAME of an agenthelm sidecar
running on this machine (listen.mcp), so several wrapped servers share the
sidecar's journal and sagas. When the sidecar verifies agents' tokens
(saga.agent_token), put the agent's token in AGENTHELM_AGENT_TOKEN.

Logs go to stderr; stdout carries only MCP frames.`,
		Example: `  agenthelm wrap -- npx -y @modelcontextprotocol/server-memory
  agenthelm wrap --config agenthelm.yaml --name memory -- npx -y @modelcontextprotocol/server-memory
  agenthelm wrap --upstream memory`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, log, err := g.load()
			if err != nil {
				return err
			}
			var spec upstream.Spec
			switch {
			case upstreamName != "" && len(args) > 0:
				return errors.New("wrap: give either --upstream NAME or -- CMD ARGS, not both")
			case upstreamName != "":
				spec = upstream.Spec{
					Name:      upstreamName,
					URL:       "http://" + cfg.Listen.MCP + "/mcp/" + upstreamName,
					Transport: "streamable-http",
				}
				if tok := os.Getenv(envAgentToken); tok != "" {
					// The sidecar verifies agents' tokens (saga.agent_token).
					spec.Headers = map[string]string{"Authorization": "Bearer " + tok}
				}
			case len(args) > 0:
				if name == "" {
					name = nameFromCommand(args)
				}
				spec = upstream.Spec{Name: name, Command: args, Transport: "stdio"}
				if u, ok := cfg.Upstreams[name]; ok {
					env, err := u.ResolvedEnv()
					if err != nil {
						return fmt.Errorf("upstreams.%s.env: %w", name, err)
					}
					spec.Env, spec.Dir = env, u.Cwd
				}
			default:
				return errors.New("wrap: missing the server to wrap: agenthelm wrap -- CMD [ARGS...] or agenthelm wrap --upstream NAME")
			}
			ctx := cmd.Context()
			grace := time.Duration(cfg.Limits.ShutdownGrace)
			specs := map[string]upstream.Spec{spec.Name: spec}
			if upstreamName != "" {
				// The sidecar journals and unwinds; this is only a bridge.
				p := proxy.New(proxy.Options{Upstreams: specs, Logger: log, MaxBodyBytes: int64(cfg.Limits.MaxBodyBytes)})
				defer p.Close(context.WithoutCancel(ctx)) //nolint:errcheck
				return p.ServeStdio(ctx, spec.Name, g.stdin, g.stdout, grace)
			}
			cfg.Journal.Dir = wrapDataDir(cfg, spec.Name, args)
			log.Info("wrapping", "upstream", spec.Name, "journal", cfg.Journal.Dir)
			st, err := openStack(ctx, cfg, log, specs)
			if err != nil {
				return err
			}
			serveErr := st.proxy.ServeStdio(ctx, spec.Name, g.stdin, g.stdout, grace)
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
			defer cancel()
			return errors.Join(serveErr, st.Close(cctx))
		},
	}
	cmd.Flags().StringVar(&upstreamName, "upstream", "", "bridge to this upstream of a running sidecar")
	cmd.Flags().StringVar(&name, "name", "", "name of the wrapped server (default: derived from the command)")
	return cmd
}

// nameFromCommand derives an upstream name from a server command: the npm
// package or the program's base name, e.g. "server-memory" for
// `npx -y @modelcontextprotocol/server-memory`.
func nameFromCommand(args []string) string {
	pick := args[0]
	if base := filepath.Base(args[0]); base == "npx" || base == "uvx" || base == "node" || base == "python" || base == "python3" || base == "docker" {
		for _, a := range args[1:] {
			if !strings.HasPrefix(a, "-") {
				pick = a
				break
			}
		}
	}
	// A script path (node .../server-everything/dist/index.js): name it
	// after the first directory above it that is not a build folder.
	if strings.ContainsRune(pick, filepath.Separator) {
		dir, base := filepath.Split(filepath.Clean(pick))
		stem := strings.TrimSuffix(base, filepath.Ext(base))
		if stem == "index" || stem == "main" || stem == "server" || stem == "cli" {
			for d := filepath.Clean(dir); d != "." && d != string(filepath.Separator); d = filepath.Dir(d) {
				switch filepath.Base(d) {
				case "dist", "build", "lib", "src", "bin", "out":
					continue
				}
				pick = filepath.Base(d)
				break
			}
		}
	}
	pick = filepath.Base(pick)
	if i := strings.LastIndex(pick, "@"); i > 0 {
		pick = pick[:i] // drop a version: server-memory@1.2.3
	}
	pick = strings.TrimSuffix(pick, filepath.Ext(pick))
	var b strings.Builder
	for _, r := range pick {
		if r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "upstream"
	}
	return b.String()
}

// wrapDataDir is the journal directory of a standalone wrap: one per
// wrapped command (Badger allows one process per directory), under
// journal.dir when it was configured, else under the user's state
// directory, since an agent may start wrap from any working directory.
func wrapDataDir(cfg *config.Config, name string, argv []string) string {
	h := sha256.Sum256([]byte(strings.Join(argv, "\x00")))
	leaf := name + "-" + hex.EncodeToString(h[:4])
	if cfg.Journal.Dir != config.Default().Journal.Dir {
		return filepath.Join(cfg.Journal.Dir, "wrap", leaf)
	}
	base := os.Getenv("XDG_STATE_HOME")
	if base == "" {
		if home, err := os.UserHomeDir(); err == nil {
			base = filepath.Join(home, ".local", "state")
		} else {
			base = os.TempDir()
		}
	}
	return filepath.Join(base, "agenthelm", "wrap", leaf)
}
