package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agenthelm/agenthelm/admin"
	"github.com/agenthelm/agenthelm/approvals"
	"github.com/agenthelm/agenthelm/config"
	"github.com/spf13/cobra"
)

func newApprovalsCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "approvals",
		Short: "List, approve and deny tool calls held for a human decision",
		Long: `approvals works on the calls a running sidecar holds because the policy said
require_approval. A held call waits in the sidecar (the agent's request stays
open) until someone approves or denies it, or it expires, which denies it.
The first decision wins; who decided, why, and the digest of the exact
arguments approved are journaled before the call is forwarded.

These commands go through the sidecar's admin API (listen.admin, with the
admin token from the data directory). The same decisions can be made in a
browser on the admin listener's /approvals page, or through the admin API.`,
		Example: `  agenthelm approvals list
  agenthelm approvals show ap-3f2a9c1d0e4b5a67
  agenthelm approvals approve ap-3f2a9c1d0e4b5a67 --reason 'invoice checked'
  agenthelm approvals deny ap-3f2a9c1d0e4b5a67 --reason 'wrong customer' --by alice`,
	}
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON for scripts")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the calls waiting for a decision, oldest first",
		Example: `  agenthelm approvals list
  agenthelm approvals list --json | jq -r '.[].id'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var pending []approvals.Request
			c, err := g.approvalsClient(cmd.Context(), "GET", "/v1/approvals", nil, &pending)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, pending)
			}
			return printPending(g.stdout, pending, c.base, time.Now())
		},
	}

	show := &cobra.Command{
		Use:     "show ID",
		Short:   "Show a held call with everything needed to decide: arguments, reasons, saga history",
		Example: "  agenthelm approvals show ap-3f2a9c1d0e4b5a67",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r approvals.Request
			if _, err := g.approvalsClient(cmd.Context(), "GET", "/v1/approvals/"+url.PathEscape(args[0]), nil, &r); err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, r)
			}
			return printRequest(g.stdout, r, time.Now())
		},
	}

	decide := func(name string, approve bool, short, example string) *cobra.Command {
		var reason, by string
		c := &cobra.Command{
			Use:     name + " ID",
			Short:   short,
			Example: example,
			Args:    cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				if by == "" {
					by = defaultApprover()
				}
				var d admin.Decided
				path := "/v1/approvals/" + url.PathEscape(args[0]) + "/" + name
				if _, err := g.approvalsClient(cmd.Context(), "POST", path, admin.Decide{By: by, Reason: reason}, &d); err != nil {
					return err
				}
				if asJSON {
					return printJSON(g.stdout, d)
				}
				_, err := fmt.Fprintf(g.stdout, "%s %s: %s/%s (saga %s, step %d) by %s\n", verdictWord(d.Approved), d.Approval.ID,
					d.Approval.Upstream, d.Approval.Tool, d.Approval.Saga, d.Approval.Step, d.By)
				return err
			},
		}
		c.Flags().StringVar(&reason, "reason", "", "why (journaled; on a denial the agent is told)")
		c.Flags().StringVar(&by, "by", "", "who decides (journaled; default: cli:<your user name>)")
		return c
	}
	cmd.AddCommand(list, show,
		decide("approve", true, "Approve a held call: it is forwarded at once",
			"  agenthelm approvals approve ap-3f2a9c1d0e4b5a67 --reason 'invoice checked'"),
		decide("deny", false, "Deny a held call: the agent gets an error result with the reason",
			"  agenthelm approvals deny ap-3f2a9c1d0e4b5a67 --reason 'wrong customer'"))
	return cmd
}

// approvalsClient sends one request to the running sidecar's admin API.
// Held calls live only in a running sidecar, so there is no offline mode.
func (g *globals) approvalsClient(ctx context.Context, method, path string, body, out any) (*adminClient, error) {
	cfg, _, err := g.load()
	if err != nil {
		return nil, err
	}
	c := newAdminClient(cfg)
	err = c.do(ctx, method, path, body, out)
	if errors.Is(err, errNoSidecar) {
		return c, fmt.Errorf("no sidecar is running (nothing answers on %s): calls are held for approval only inside a running `agenthelm serve`, so there is nothing to list or decide", strings.TrimPrefix(c.base, "http://"))
	}
	return c, err
}

// defaultApprover names the person at this terminal.
func defaultApprover() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	if n := os.Getenv("USER"); n != "" {
		return "cli:" + n
	}
	return "cli"
}

func verdictWord(approved bool) string {
	if approved {
		return "approved"
	}
	return "denied"
}

func printPending(w io.Writer, pending []approvals.Request, base string, now time.Time) error {
	if len(pending) == 0 {
		_, err := fmt.Fprintln(w, "no calls are waiting for approval")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APPROVAL\tCALL\tSAGA\tSTEP\tAGENT\tEXPIRES IN\tWHY")
	for _, r := range pending {
		fmt.Fprintf(tw, "%s\t%s/%s\t%s\t%d\t%s\t%s\t%s\n", r.ID, r.Upstream, r.Tool, r.Saga, r.Step, orDash(r.Agent),
			expiresIn(r.Expires, now), clip(strings.Join(r.Reasons, "; "), 60))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\nagenthelm approvals show ID | approve ID [--reason R] | deny ID --reason R\nor in a browser: %s%s?token=<the admin token>\n", base, approvals.PagePath)
	return err
}

func printRequest(w io.Writer, r approvals.Request, now time.Time) error {
	fmt.Fprintf(w, "approval %s: %s/%s waits for a decision\n", r.ID, r.Upstream, r.Tool)
	fmt.Fprintf(w, "  saga        %s, step %d\n", r.Saga, r.Step)
	fmt.Fprintf(w, "  agent       %s\n", orDash(r.Agent))
	fmt.Fprintf(w, "  why         %s\n", orDash(strings.Join(r.Reasons, "; ")))
	fmt.Fprintf(w, "  approvers   %s\n", orDash(strings.Join(r.Approvers, ", ")))
	fmt.Fprintf(w, "  requested   %s\n", r.Created.Local().Format(time.RFC3339))
	fmt.Fprintf(w, "  expires     %s (in %s; expiry denies)\n", r.Expires.Local().Format(time.RFC3339), expiresIn(r.Expires, now))
	fmt.Fprintf(w, "  digest      %s\n", r.ArgsDigest)
	fmt.Fprintf(w, "  decision    %s\n", r.DecisionID)
	for _, k := range slices.Sorted(maps.Keys(r.Labels)) {
		fmt.Fprintf(w, "  label       %s=%s\n", k, r.Labels[k])
	}
	fmt.Fprintf(w, "arguments:\n%s\n", approvalArgs(r.Arguments, "  "))
	if len(r.History) > 0 {
		fmt.Fprintln(w, "earlier steps of the saga:")
		for _, s := range r.History {
			fmt.Fprintf(w, "  %d  %s/%s  %s\n%s\n", s.N, s.Upstream, s.Tool, s.Status, approvalArgs(s.Args, "       "))
		}
	}
	return nil
}

// approvalArgs pretty-prints arguments, each line indented.
func approvalArgs(raw json.RawMessage, indent string) string {
	var b bytes.Buffer
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = json.RawMessage("{}")
	}
	if json.Indent(&b, raw, indent, "  ") != nil {
		return indent + string(raw)
	}
	return indent + b.String()
}

func expiresIn(t, now time.Time) string {
	d := t.Sub(now).Round(time.Second)
	if d <= 0 {
		return "now"
	}
	return d.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// approvalNotifier is the configured approvals webhook, or nil. A URL that
// names an unset environment variable is an error at start.
func approvalNotifier(cfg *config.Config, log *slog.Logger) (approvals.Notifier, error) {
	if cfg.Approvals.Webhook.URL == "" {
		return nil, nil
	}
	u, err := cfg.Approvals.Webhook.ResolvedURL()
	if err != nil {
		return nil, err
	}
	return approvals.NewWebhook(u, cfg.Approvals.Webhook.Format, nil, log.With("component", "webhook")), nil
}

// approvalRoutes are the approvals API, the approvals page and the policy
// status, for the admin listener (admin.Options.Extra, all listed in
// admin.Options.Public: they check the token themselves).
func approvalRoutes(st *stack, token string, log *slog.Logger) map[string]http.Handler {
	h := admin.ApprovalsHandler(st.broker, admin.ApprovalsOptions{Token: token, Policy: st.policy, Logger: log.With("component", "approvals")})
	routes := map[string]http.Handler{}
	for _, p := range admin.ApprovalPatterns {
		routes[p] = h
	}
	return routes
}
