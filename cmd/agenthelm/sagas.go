package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agenthelm/agenthelm/admin"
	"github.com/agenthelm/agenthelm/config"
	"github.com/agenthelm/agenthelm/engine"
	"github.com/agenthelm/agenthelm/journal"
	"github.com/agenthelm/agenthelm/saga"
	"github.com/spf13/cobra"
)

func newSagasCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "sagas",
		Short: "List, inspect, roll back and retry sagas",
		Long: `sagas reads and acts on the journal's sagas. With a sidecar running it goes
through the sidecar's admin API (listen.admin, with the admin token from the
data directory); with none it opens the journal directory itself.`,
		Example: `  agenthelm sagas list --status stuck
  agenthelm sagas show s-20261127-081500-1a2b3c4d5e
  agenthelm sagas rollback s-20261127-081500-1a2b3c4d5e   # undo a whole agent run
  agenthelm sagas retry s-20261127-081500-1a2b3c4d5e      # after fixing what made compensation fail`,
	}
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON for scripts")

	var status, tool, since string
	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List sagas, newest first",
		Example: `  agenthelm sagas list
  agenthelm sagas list --status needs_human --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"status": status, "tool": tool, "since": since} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if limit > 0 {
				q.Set("limit", strconv.Itoa(limit))
			}
			var heads []journal.Head
			err := g.withAdmin(cmd.Context(), func(c *adminClient) error {
				return c.do(cmd.Context(), "GET", "/v1/sagas?"+q.Encode(), nil, &heads)
			}, func(o *offline) error {
				f := journal.Filter{Status: status, Tool: tool, Limit: limit}
				if since != "" {
					d, err := time.ParseDuration(since)
					if err != nil {
						return fmt.Errorf("--since: %w", err)
					}
					f.Since = time.Now().Add(-d)
				}
				var err error
				heads, err = o.journal().List(cmd.Context(), f)
				return err
			})
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, heads)
			}
			return printHeads(g.stdout, heads, colorTerminal(g.stdout))
		},
	}
	list.Flags().StringVar(&status, "status", "", "only sagas with this status (open, aborting, committed, compensated, needs_human, stuck)")
	list.Flags().StringVar(&tool, "tool", "", "only sagas that called this tool")
	list.Flags().StringVar(&since, "since", "", "only sagas created within this duration (e.g. 1h)")
	list.Flags().IntVar(&limit, "limit", 0, "at most this many")

	show := &cobra.Command{
		Use:     "show ID",
		Short:   "Show a saga's steps and what became of them",
		Example: "  agenthelm sagas show s-20261127-081500-1a2b3c4d5e --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var sg saga.Saga
			err := g.withAdmin(cmd.Context(), func(c *adminClient) error {
				return c.do(cmd.Context(), "GET", "/v1/sagas/"+url.PathEscape(args[0]), nil, &sg)
			}, func(o *offline) error {
				s, err := o.load(cmd.Context(), args[0])
				if s != nil {
					sg = *s
				}
				return err
			})
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, sg)
			}
			return printSaga(g.stdout, &sg, colorTerminal(g.stdout))
		},
	}

	act := func(name, short, example string, step bool) *cobra.Command {
		var reason, by string
		var stepN int
		c := &cobra.Command{
			Use:     name + " ID",
			Short:   short,
			Example: example,
			Args:    cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				id := args[0]
				a := admin.Action{By: by, Reason: reason, Step: stepN}
				var sg *saga.Saga
				err := g.withAdmin(cmd.Context(), func(c *adminClient) error {
					sg = &saga.Saga{}
					return c.do(cmd.Context(), "POST", "/v1/sagas/"+url.PathEscape(id)+"/"+name, a, sg)
				}, func(o *offline) error {
					st, err := o.stack(cmd.Context())
					if err != nil {
						return err
					}
					operator := "operator:" + a.By
					if a.By == "" {
						operator = "operator:cli"
					}
					switch name {
					case "rollback":
						sg, err = st.engine.Rollback(cmd.Context(), id, operator, reason)
					case "retry":
						sg, err = st.engine.Retry(cmd.Context(), id, operator)
					case "resolve":
						sg, err = st.engine.Resolve(cmd.Context(), id, stepN, operator, reason)
					}
					return err
				})
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(g.stdout, sg)
				}
				return printSaga(g.stdout, sg, colorTerminal(g.stdout))
			},
		}
		c.Flags().StringVar(&reason, "reason", "", "why (journaled)")
		c.Flags().StringVar(&by, "by", "", "who is acting (journaled; default: cli)")
		if step {
			c.Flags().IntVar(&stepN, "step", 0, "the step that was dealt with by hand")
			_ = c.MarkFlagRequired("step")
		}
		return c
	}
	cmd.AddCommand(list, show,
		act("rollback", "Undo a saga: abort it (even if committed) and compensate its steps in reverse order",
			"  agenthelm sagas rollback s-20261127-081500-1a2b3c4d5e --reason 'bad agent run'", false),
		act("retry", "Retry the failed compensations of a stuck saga",
			"  agenthelm sagas retry s-20261127-081500-1a2b3c4d5e", false),
		act("resolve", "Record that a needs_human step was dealt with by hand, and go on unwinding",
			"  agenthelm sagas resolve s-20261127-081500-1a2b3c4d5e --step 2 --reason 'refunded by hand'", true))
	return cmd
}

// offline is the CLI's own access to the journal when no sidecar runs.
type offline struct {
	cfg *config.Config
	log *slog.Logger
	j   *journal.Journal
	st  *stack
}

func (o *offline) journal() *journal.Journal {
	if o.st != nil {
		return o.st.journal
	}
	return o.j
}

// load folds a saga from the journal without starting anything else.
func (o *offline) load(ctx context.Context, id string) (*saga.Saga, error) {
	e := engine.New(engine.Options{Journal: o.journal()})
	defer e.Close(ctx) //nolint:errcheck
	return e.Load(ctx, id)
}

// stack opens the full core (journal, engine, proxy with operator sessions
// to the configured upstreams) for commands that must act.
func (o *offline) stack(ctx context.Context) (*stack, error) {
	if o.st != nil {
		return o.st, nil
	}
	if o.j != nil {
		_ = o.j.Close(ctx)
		o.j = nil
	}
	specs, err := upstreamSpecs(o.cfg)
	if err != nil {
		return nil, err
	}
	o.st, err = openStack(ctx, o.cfg, o.log, specs)
	return o.st, err
}

func (o *offline) close(ctx context.Context) {
	if o.st != nil {
		_ = o.st.Close(ctx)
	}
	if o.j != nil {
		_ = o.j.Close(ctx)
	}
}

// withAdmin runs online through a running sidecar's admin API, or offline
// on the journal directory when no sidecar answers.
func (g *globals) withAdmin(ctx context.Context, online func(*adminClient) error, offlineFn func(*offline) error) error {
	cfg, log, err := g.load()
	if err != nil {
		return err
	}
	err = online(newAdminClient(cfg))
	if !errors.Is(err, errNoSidecar) {
		return err
	}
	o := &offline{cfg: cfg, log: log}
	defer o.close(context.WithoutCancel(ctx))
	j, err := journal.Open(ctx, journal.Options{Dir: cfg.Journal.Dir, Sync: true})
	if err != nil {
		return fmt.Errorf("no sidecar answers on %s and the journal could not be opened: %w", cfg.Listen.Admin, err)
	}
	o.j = j
	return offlineFn(o)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

var statusColor = map[string]string{
	"open": "36", "aborting": "33", "committed": "32", "compensated": "34", "needs_human": "31;1", "stuck": "31;1",
	"succeeded": "32", "tool_error": "31", "protocol_error": "31", "in_doubt": "33", "timeout": "33", "cancelled": "33",
	"failed": "31", "irreversible": "31", "needs_human_step": "31",
}

func paint(on bool, status, text string) string {
	c, ok := statusColor[status]
	if !on || !ok {
		return text
	}
	return "\x1b[" + c + "m" + text + "\x1b[0m"
}

func printHeads(w io.Writer, heads []journal.Head, color bool) error {
	if len(heads) == 0 {
		_, err := fmt.Fprintln(w, "no sagas")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SAGA\tSTATUS\tSTEPS\tTOOLS\tCREATED\tUPDATED")
	for _, h := range heads {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", h.Saga, paint(color, h.Status, h.Status), h.Steps,
			clipList(h.Tools, 40), h.Created.Local().Format("2006-01-02 15:04:05"), h.Updated.Local().Format("15:04:05"))
	}
	return tw.Flush()
}

func clipList(items []string, n int) string {
	s := strings.Join(items, ",")
	if len(s) > n {
		s = s[:n-1] + "…"
	}
	return s
}

func printSaga(w io.Writer, s *saga.Saga, color bool) error {
	fmt.Fprintf(w, "saga %s  %s  (scope %s)\n", s.ID, paint(color, string(s.Status), string(s.Status)), s.Scope)
	fmt.Fprintf(w, "  created %s, updated %s\n", s.Created.Local().Format(time.RFC3339), s.Updated.Local().Format(time.RFC3339))
	if s.AbortReason != "" {
		fmt.Fprintf(w, "  unwound because %s\n", s.AbortReason)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  STEP\tCALL\tOUTCOME\tUNDO\tCOMPENSATION\tTOOK")
	for _, st := range s.Steps {
		undo, comp := "-", "-"
		switch {
		case st.ReadOnly:
			undo = "read-only"
		case st.Compensator != nil && !st.Irreversible:
			comp = st.Compensator.Tool
		default:
			comp = "(none: irreversible)"
		}
		if st.Comp.Status != "" {
			undo = string(st.Comp.Status)
			if st.Comp.Attempts > 1 {
				undo += fmt.Sprintf(" (%d attempts)", st.Comp.Attempts)
			}
		}
		took := "-"
		if !st.Finished.IsZero() {
			took = st.Finished.Sub(st.Started).Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "  %d\t%s/%s\t%s\t%s\t%s\t%s\n", st.N, st.Upstream, st.Tool,
			paint(color, string(st.Status), string(st.Status)), paint(color, string(st.Comp.Status), undo), comp, took)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, st := range s.Steps {
		if st.Comp.LastError != "" {
			fmt.Fprintf(w, "  step %d: %s\n", st.N, st.Comp.LastError)
		}
	}
	return nil
}
