package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/agenthelm/agenthelm/config"
	"github.com/agenthelm/agenthelm/policies"
	"github.com/agenthelm/agenthelm/policy"
	"github.com/spf13/cobra"
)

func newPolicyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Test, try out and inspect the Rego policy that decides every tool call",
		Long: `policy works with the policy directory (policy.dir in the configuration,
./policies by default; with neither, the policies built into agenthelm): Rego
files in package agenthelm.authz whose rule "decision" allows, denies or holds
each tool call, their *_test.rego unit tests, and data.json files.

The files are standard Rego: OPA's own "opa test DIR" runs the same tests.`,
		Example: `  agenthelm policy test -v
  agenthelm policy eval --input call.json --explain
  agenthelm policy status`,
	}
	cmd.AddCommand(newPolicyTestCmd(g), newPolicyEvalCmd(g), newPolicyStatusCmd(g))
	return cmd
}

func newPolicyTestCmd(g *globals) *cobra.Command {
	var verbose bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "test [DIR]",
		Short: "Run the policy's Rego unit tests, as `opa test` does",
		Long: `test runs the Rego unit tests (rules named test_*, usually in *_test.rego
files) of DIR, or of the configured policy directory, with the directory's
data files loaded, and prints OPA's test report: the failures (every test
with -v), then PASS: n/n or FAIL: n/m.

Exit status, as opa test's: 0 when every test passes, 2 when a test fails or
raises an error, 1 when the directory does not load or holds no tests.`,
		Example: `  agenthelm policy test                 # the configured policy directory
  agenthelm policy test policies/ -v    # every test, with the trace of failures
  opa test policies/                    # OPA's CLI agrees`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, cleanup, err := policyDirFor(g, firstArg(args))
			if err != nil {
				return err
			}
			defer cleanup()
			_, failed, err := policy.RunTests(cmd.Context(), dir, g.stdout, policy.TestOptions{Verbose: verbose, Timeout: timeout})
			if err != nil {
				return err
			}
			if failed > 0 {
				return exitError{2}
			}
			return nil
		},
	}
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "report every test, and trace the failing ones")
	c.Flags().DurationVar(&timeout, "timeout", policy.DefaultTestTimeout, "how long one test may take before it fails, as opa test's --timeout")
	return c
}

func newPolicyEvalCmd(g *globals) *cobra.Command {
	var input, dir string
	var explain bool
	c := &cobra.Command{
		Use:   "eval --input FILE",
		Short: "Evaluate the policy's decision for one input document",
		Long: `eval computes the decision the policy would give for the input document in
FILE (the documented input: tool, arguments, transport, agent, saga, time;
see docs/POLICY.md) exactly as the sidecar computes it, fail-closed rules
included, and prints the verdict, reasons, approvers, approval timeout,
labels and the decision object. --explain adds the notes of trace() calls
and OPA's evaluation trace with file:line locations.`,
		Example: `  agenthelm policy eval --input call.json
  agenthelm policy eval --input call.json --explain --dir ./policies`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, cleanup, err := policyDirFor(g, dir)
			if err != nil {
				return err
			}
			defer cleanup()
			return policy.EvalFile(cmd.Context(), d, input, explain, g.stdout)
		},
	}
	c.Flags().StringVar(&input, "input", "", "the input document (JSON)")
	c.Flags().StringVar(&dir, "dir", "", "policy directory (default: policy.dir from the configuration)")
	c.Flags().BoolVar(&explain, "explain", false, "show trace() notes and the evaluation trace")
	_ = c.MarkFlagRequired("input")
	return c
}

func newPolicyStatusCmd(g *globals) *cobra.Command {
	var dir string
	var asJSON bool
	c := &cobra.Command{
		Use:   "status",
		Short: "Show which policy revision decides, and whether the last reload was rejected",
		Long: `status asks the running sidecar which policy revision is active, when it was
loaded, and why the last reload was rejected if it was (a rejected reload
leaves the previous revision deciding). With no sidecar running it loads the
policy directory itself and reports its revision, or why it does not load.

Exit status: 0 when the policy on disk is what decides; 1 when a reload was
rejected, or the directory does not load.`,
		Example: `  agenthelm policy status
  agenthelm policy status --json
  agenthelm policy status --dir ./policies   # offline: does this directory load?`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st policy.Status
			where, mode := "", policy.ModeEnforce
			if dir == "" {
				cfg, _, err := g.load()
				if err != nil {
					return err
				}
				mode = cfg.Policy.Mode
				c := newAdminClient(cfg)
				err = c.do(cmd.Context(), "GET", "/v1/policy", nil, &st)
				switch {
				case err == nil:
					where = "the sidecar on " + strings.TrimPrefix(c.base, "http://")
				case !errors.Is(err, errNoSidecar):
					return err
				}
			}
			if where == "" {
				d, cleanup, err := policyDirFor(g, dir)
				if err != nil {
					return err
				}
				defer cleanup()
				e, err := policy.New(cmd.Context(), policy.Options{Dir: d, Mode: mode})
				if err != nil {
					return fmt.Errorf("policy directory %s does not load: %w", d, err)
				}
				st = e.Status()
				where = "loaded from " + d + " by this command (no sidecar is running)"
			}
			if asJSON {
				if err := printJSON(g.stdout, st); err != nil {
					return err
				}
			} else {
				printPolicyStatus(g.stdout, st, where)
			}
			if st.LastError != "" {
				return exitError{1}
			}
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "load this policy directory instead of asking the sidecar")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts")
	return c
}

func printPolicyStatus(w io.Writer, st policy.Status, where string) {
	fmt.Fprintf(w, "policy      %s\n", where)
	if st.Source != "" {
		fmt.Fprintf(w, "source      %s\n", st.Source)
	}
	fmt.Fprintf(w, "revision    %s\n", st.Revision)
	fmt.Fprintf(w, "loaded at   %s\n", st.LoadedAt.Local().Format(time.RFC3339))
	fmt.Fprintf(w, "mode        %s\n", st.Mode)
	fmt.Fprintf(w, "files       %s\n", strings.Join(st.Files, ", "))
	if st.LastError == "" {
		fmt.Fprintln(w, "last reload ok")
		return
	}
	fmt.Fprintf(w, "last reload REJECTED at %s; revision %s keeps deciding:\n", st.LastErrorAt.Local().Format(time.RFC3339), st.Revision)
	for _, l := range strings.Split(st.LastError, "\n") {
		fmt.Fprintf(w, "  %s\n", l)
	}
}

// policyDirFor is the policy directory a command reads: dir if given, else
// the configured one; when that is the default and does not exist, the
// built-in policies, as `serve` uses then, copied into a temporary
// directory that cleanup removes.
func policyDirFor(g *globals, dir string) (string, func(), error) {
	nothing := func() {}
	if dir != "" {
		return dir, nothing, nil
	}
	cfg, log, err := g.load()
	if err != nil {
		return "", nil, err
	}
	if _, err := os.Stat(cfg.Policy.Dir); err == nil || cfg.Policy.Dir != config.Default().Policy.Dir {
		return cfg.Policy.Dir, nothing, nil
	}
	tmp, err := os.MkdirTemp("", "agenthelm-policies-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { _ = os.RemoveAll(tmp) }
	if _, err := policies.WriteTo(tmp); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("built-in policies: %w", err)
	}
	log.Info("no policy directory: using the built-in policies", "dir", cfg.Policy.Dir)
	return tmp, cleanup, nil
}

func firstArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}
