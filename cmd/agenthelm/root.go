package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"
)

// globals are the flags every subcommand shares.
type globals struct {
	configPath string
	logLevel   string
	logFormat  string
	stdin      io.Reader
	stdout     io.Writer
	stderr     io.Writer
}

func newRootCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "agenthelm",
		Short: "Transactions, approvals and rollback for AI agents' tool calls",
		Long: `agenthelm is a sidecar proxy between an AI agent and its tools (MCP servers
or HTTP tool APIs). Every tool call is checked against Rego policies, written
to a durable journal with the action that would undo it, forwarded, and
rolled back in reverse order when a later step fails.`,
		Example: `  agenthelm demo                         # see it work, nothing to set up
  agenthelm serve --config agenthelm.yaml
  agenthelm wrap -- npx -y @modelcontextprotocol/server-memory`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVarP(&g.configPath, "config", "c", "", "configuration file (default: ./agenthelm.yaml if it exists, else built-in defaults)")
	pf.StringVar(&g.logLevel, "log-level", "", "log level: debug, info, warn, error (overrides log.level)")
	pf.StringVar(&g.logFormat, "log-format", "", "log format: text or json (overrides log.format)")

	root.AddCommand(newVersionCmd(g), newServeCmd(g), newWrapCmd(g), newDemoCmd(g), newSagasCmd(g))
	root.AddCommand(newTracesCmd(g))
	root.AddCommand(newApprovalsCmd(g), newPolicyCmd(g))
	return root
}

// newLogger builds the process's logger. Logs go to stderr: stdout belongs
// to the agent in `wrap`.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "", "info":
		lv = slog.LevelInfo
	case "debug":
		lv = slog.LevelDebug
	case "warn", "warning":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}
