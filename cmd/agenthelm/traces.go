package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agenthelm/agenthelm/admin"
	"github.com/agenthelm/agenthelm/journal"
	"github.com/agenthelm/agenthelm/saga"
	"github.com/agenthelm/agenthelm/traces"
	"github.com/spf13/cobra"
)

func newTracesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "traces",
		Short: "List, filter, inspect and export the trace of every tool call and compensation",
		Long: `traces reads the journal as a trace: one record per tool call (a saga step)
and one per compensation, with its status (success, failed, denied, running),
exact outcome, timing, arguments, result or error, and what became of its
undo. With a sidecar running it goes through the sidecar's admin API; with
none it opens the journal directory itself.

Record ids are <saga>#<step> for a call and <saga>#<step>.undo for its
compensation; "traces show" takes either, or a saga id.`,
		Example: `  agenthelm traces list
  agenthelm traces filter --status failed --tool-name send_email --since 1h
  agenthelm traces show s-20261127-081500-1a2b3c4d5e
  agenthelm traces export --output traces.db --format sqlite
  sqlite3 traces.db "SELECT tool_name, COUNT(*) FROM traces WHERE status = 'failed' GROUP BY tool_name"`,
	}
	cmd.AddCommand(newTracesListCmd(g), newTracesFilterCmd(g), newTracesShowCmd(g), newTracesExportCmd(g))
	return cmd
}

func newTracesListCmd(g *globals) *cobra.Command {
	var limit int
	var asJSON bool
	c := &cobra.Command{
		Use:   "list",
		Short: "List the newest trace records",
		Example: `  agenthelm traces list
  agenthelm traces list --limit 100 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			recs, err := g.traceRecords(cmd.Context(), traces.Filter{Limit: limit})
			if err != nil {
				return err
			}
			return g.printRecords(recs, asJSON)
		},
	}
	c.Flags().IntVar(&limit, "limit", 20, "at most this many records (0: all)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts")
	return c
}

// traceFilterFlags are the filter flags filter and export share.
type traceFilterFlags struct {
	status, tool, upstream, kind, saga, since string
}

func (t *traceFilterFlags) register(c *cobra.Command) {
	f := c.Flags()
	f.StringVar(&t.status, "status", "", "success, failed, denied or running, or an exact outcome (tool_error, timeout, compensated, ...)")
	f.StringVar(&t.tool, "tool-name", "", "only calls of this tool (and compensations that ran it)")
	f.StringVar(&t.upstream, "upstream", "", "only records of this upstream")
	f.StringVar(&t.kind, "kind", "", "call or compensation")
	f.StringVar(&t.saga, "saga", "", "only the records of this saga")
	f.StringVar(&t.since, "since", "", "only records started within this duration (30m, 1h, 7d) or since this time (2026-11-27T08:00:00Z, 2026-11-27)")
}

func (t *traceFilterFlags) filter(limit int) (traces.Filter, error) {
	f := traces.Filter{Status: t.status, Tool: t.tool, Upstream: t.upstream, Kind: t.kind, Saga: t.saga, Limit: limit}
	if t.since != "" {
		since, err := traces.ParseSince(t.since, time.Now())
		if err != nil {
			return f, fmt.Errorf("--%w", err)
		}
		f.Since = since
	}
	if err := f.Validate(); err != nil {
		return f, fmt.Errorf("--%w", err)
	}
	return f, nil
}

func newTracesFilterCmd(g *globals) *cobra.Command {
	var ff traceFilterFlags
	var limit int
	var asJSON bool
	c := &cobra.Command{
		Use:   "filter",
		Short: "List the trace records that match every given condition, newest first",
		Example: `  agenthelm traces filter --status failed
  agenthelm traces filter --status failed --tool-name charge_customer --since 1h
  agenthelm traces filter --kind compensation --status failed --since 7d --json
  agenthelm traces filter --status in_doubt --upstream payments`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := ff.filter(limit)
			if err != nil {
				return err
			}
			recs, err := g.traceRecords(cmd.Context(), f)
			if err != nil {
				return err
			}
			return g.printRecords(recs, asJSON)
		},
	}
	ff.register(c)
	c.Flags().IntVar(&limit, "limit", 0, "at most this many records (0: all)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts")
	return c
}

func newTracesShowCmd(g *globals) *cobra.Command {
	var asJSON, noColor bool
	c := &cobra.Command{
		Use:   "show ID",
		Short: "Show a whole saga as a tree: its steps, decisions, compensations and timings",
		Long: `show prints one saga: every step in the order it happened with its outcome,
timing, arguments and result or error; policy decisions, approvals and other
notes journaled with it; how the saga ended or unwound; and for each step
its compensation with every attempt. ID is a saga id or a record id from
"traces list" (<saga>#<step>, whose step is marked).`,
		Example: `  agenthelm traces show s-20261127-081500-1a2b3c4d5e
  agenthelm traces show 's-20261127-081500-1a2b3c4d5e#2'
  agenthelm traces show s-20261127-081500-1a2b3c4d5e --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := g.traceHistory(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(g.stdout, h)
			}
			return printHistory(g.stdout, h, args[0], !noColor && colorTerminal(g.stdout))
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the saga's state, records and events as JSON")
	c.Flags().BoolVar(&noColor, "no-color", false, "no colour even on a terminal")
	return c
}

func newTracesExportCmd(g *globals) *cobra.Command {
	var ff traceFilterFlags
	var output, format string
	var force bool
	c := &cobra.Command{
		Use:   "export --output FILE [--format csv|jsonl|sqlite]",
		Short: "Write trace records to a CSV, JSON Lines or SQLite file, oldest first",
		Long: `export writes every trace record (or those the filter flags select) to FILE,
oldest first. The format comes from --format, else from FILE's extension
(.csv; .jsonl or .ndjson; .db, .sqlite or .sqlite3). An existing FILE is
left alone unless --force is given; the file appears complete or not at all.
--output - writes CSV or JSON Lines to standard output.

The SQLite file has one table, traces, with the columns
` + wrapWords(strings.Join(traces.Columns, ", ")+".", 76) + `
Times are UTC text; arguments and result are JSON text.`,
		Example: `  agenthelm traces export --output traces.csv
  agenthelm traces export --output traces.db --format sqlite
  sqlite3 traces.db "SELECT tool_name, COUNT(*) FROM traces WHERE status = 'failed' GROUP BY tool_name"
  agenthelm traces export --output failures.jsonl --status failed --since 7d
  agenthelm traces export --output - --format jsonl | jq .tool_name`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format == "" {
				if format = traces.FormatOf(output); format == "" {
					return fmt.Errorf("cannot tell the format from %q: pass --format %s", output, strings.Join(traces.Formats, "|"))
				}
			}
			if !slices.Contains(traces.Formats, format) {
				return fmt.Errorf("--format %q: want one of %s", format, strings.Join(traces.Formats, ", "))
			}
			if output == "-" && format == traces.FormatSQLite {
				return errors.New("--output -: a SQLite database cannot go to standard output; name a file")
			}
			f, err := ff.filter(0)
			if err != nil {
				return err
			}
			recs, err := g.traceRecords(cmd.Context(), f)
			if err != nil {
				return err
			}
			slices.Reverse(recs) // oldest first, like a log
			switch {
			case output == "-" && format == traces.FormatCSV:
				return traces.WriteCSV(g.stdout, recs)
			case output == "-":
				return traces.WriteJSONL(g.stdout, recs)
			}
			if err := traces.WriteFile(cmd.Context(), output, format, recs, force); err != nil {
				return err
			}
			_, err = fmt.Fprintf(g.stdout, "exported %d trace records to %s (%s)\n", len(recs), output, format)
			return err
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "", "file to write (- for standard output)")
	c.Flags().StringVar(&format, "format", "", "csv, jsonl or sqlite (default: from the file's extension)")
	c.Flags().BoolVar(&force, "force", false, "overwrite FILE if it exists")
	ff.register(c)
	_ = c.MarkFlagRequired("output")
	return c
}

// wrapWords breaks s into lines of at most width bytes at spaces.
func wrapWords(s string, width int) string {
	var b strings.Builder
	n := 0
	for i, w := range strings.Fields(s) {
		if i > 0 && n+1+len(w) > width {
			b.WriteString("\n")
			n = 0
		} else if i > 0 {
			b.WriteString(" ")
			n++
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}

// traceRecords reads trace records through the sidecar's admin API, or
// from the journal when no sidecar runs.
func (g *globals) traceRecords(ctx context.Context, f traces.Filter) ([]traces.Record, error) {
	var recs []traces.Record
	err := g.withAdmin(ctx, func(c *adminClient) error {
		err := getJSON(ctx, c, "/v1/traces?"+f.Query().Encode(), &recs)
		if errors.Is(err, errNoTraceRoute) {
			recs, err = traces.Collect(ctx, adminSagas{c}, f)
		}
		return err
	}, func(o *offline) error {
		var err error
		recs, err = traces.Collect(ctx, traces.FromJournal(o.journal()), f)
		return err
	})
	return recs, err
}

// traceHistory reads one saga's history; id is a saga id or a record id.
func (g *globals) traceHistory(ctx context.Context, id string) (*traces.History, error) {
	var h *traces.History
	err := g.withAdmin(ctx, func(c *adminClient) error {
		h = &traces.History{}
		err := getJSON(ctx, c, "/v1/traces/"+url.PathEscape(id), h)
		if !errors.Is(err, errNoTraceRoute) {
			return err
		}
		src := adminSagas{c}
		h, err = src.History(ctx, id)
		if sagaID, _, ok := traces.ParseID(id); ok && errors.Is(err, journal.ErrNotFound) {
			h, err = src.History(ctx, sagaID)
		}
		return err
	}, func(o *offline) error {
		var err error
		h, err = traces.Load(ctx, o.journal(), id)
		if sagaID, _, ok := traces.ParseID(id); ok && errors.Is(err, journal.ErrNotFound) {
			h, err = traces.Load(ctx, o.journal(), sagaID)
		}
		return err
	})
	return h, err
}

// errNoTraceRoute means the sidecar's admin API has no /v1/traces (an
// older sidecar): the CLI then builds the trace from /v1/sagas.
var errNoTraceRoute = errors.New("the sidecar has no trace routes")

// getJSON is a GET on the admin API that tells a route the sidecar does
// not have (errNoTraceRoute) from a saga it does not have
// (journal.ErrNotFound, wrapped).
func getJSON(ctx context.Context, c *adminClient, path string, out any) error {
	status, data, err := c.roundTrip(ctx, "GET", path, nil)
	if err != nil {
		return err
	}
	if status == http.StatusOK {
		return json.Unmarshal(data, out)
	}
	var e admin.Error
	isJSON := json.Unmarshal(data, &e) == nil && e.Error != ""
	switch {
	case status == http.StatusNotFound && !isJSON:
		return errNoTraceRoute
	case status == http.StatusNotFound:
		return fmt.Errorf("%w: %s", journal.ErrNotFound, strings.TrimPrefix(e.Error, journal.ErrNotFound.Error()+": "))
	case isJSON:
		return errors.New(e.Error)
	}
	return fmt.Errorf("admin API %s: %s", c.base, http.StatusText(status))
}

// adminSagas reads sagas through the admin API's saga routes, for a
// sidecar without trace routes. Compensation records then have no times.
type adminSagas struct{ c *adminClient }

var _ traces.Source = adminSagas{}

func (s adminSagas) List(ctx context.Context, _ journal.Filter) ([]journal.Head, error) {
	var heads []journal.Head
	err := getJSON(ctx, s.c, "/v1/sagas", &heads)
	return heads, err
}

func (s adminSagas) History(ctx context.Context, id string) (*traces.History, error) {
	var sg saga.Saga
	if err := getJSON(ctx, s.c, "/v1/sagas/"+url.PathEscape(id), &sg); err != nil {
		return nil, err
	}
	return traces.FromState(&sg), nil
}

// traceColor adds the record statuses to the saga colours.
var traceColor = map[string]string{
	traces.StatusSuccess: "32", traces.StatusDenied: "35", traces.StatusRunning: "36",
	"http_status": "31", "not_sent": "33", "in_flight": "36",
	"allow": "32", "deny": "31", "require_approval": "33",
	traces.ApprovalApproved: "32", traces.ApprovalRejected: "31", traces.ApprovalExpired: "31", traces.ApprovalPending: "33",
	"resolved": "34", "skipped": "33",
}

func tpaint(on bool, status, text string) string {
	if c, ok := traceColor[status]; on && ok {
		return "\x1b[" + c + "m" + text + "\x1b[0m"
	}
	return paint(on, status, text)
}

func (g *globals) printRecords(recs []traces.Record, asJSON bool) error {
	if asJSON {
		if recs == nil {
			recs = []traces.Record{}
		}
		return printJSON(g.stdout, recs)
	}
	return printRecordTable(g.stdout, recs, colorTerminal(g.stdout))
}

// cell is a table cell: its text and how it is shown (coloured).
type cell struct{ text, shown string }

func plain(s string) cell { return cell{s, s} }

// printTable aligns columns by their visible text, so that colour codes do
// not skew them.
func printTable(w io.Writer, rows [][]cell) error {
	var widths []int
	for _, r := range rows {
		for i, c := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c.text))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		for i, c := range r {
			b.WriteString(c.shown)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c.text)+2))
			}
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func printRecordTable(w io.Writer, recs []traces.Record, color bool) error {
	if len(recs) == 0 {
		_, err := fmt.Fprintln(w, "no trace records")
		return err
	}
	rows := [][]cell{{plain("STARTED"), plain("TRACE"), plain("TOOL"), plain("STATUS"), plain("OUTCOME"), plain("TOOK"), plain("SAGA STATUS")}}
	for _, r := range recs {
		started := "-"
		if !r.Started.IsZero() {
			started = r.Started.Local().Format("2006-01-02 15:04:05.000")
		}
		tool := r.Upstream + "/" + r.ToolName
		if r.Kind == traces.KindCompensation {
			tool = "undo " + tool
		}
		rows = append(rows, []cell{plain(started), plain(r.ID), plain(tool),
			{r.Status, tpaint(color, r.Status, r.Status)}, {r.Outcome, tpaint(color, r.Outcome, r.Outcome)},
			plain(took(r.DurationMS)), {r.SagaStatus, tpaint(color, r.SagaStatus, r.SagaStatus)}})
	}
	return printTable(w, rows)
}

func took(ms *float64) string {
	if ms == nil {
		return "-"
	}
	return fmtDuration(time.Duration(*ms * float64(time.Millisecond)))
}

// fmtDuration rounds a duration for people: 412µs, 3.2ms, 48ms, 1.043s.
func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < 10*time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

// node is a line of the show tree with its children.
type node struct {
	text string
	kids []*node
}

func (n *node) add(format string, args ...any) *node {
	k := &node{text: fmt.Sprintf(format, args...)}
	n.kids = append(n.kids, k)
	return k
}

func (n *node) render(b *strings.Builder, prefix string) {
	for i, k := range n.kids {
		branch, next := "├─ ", "│  "
		if i == len(n.kids)-1 {
			branch, next = "└─ ", "   "
		}
		b.WriteString(prefix + branch + k.text + "\n")
		k.render(b, prefix+next)
	}
}

// oneLine folds s onto one line of at most n runes.
func oneLine(s string, n int) string {
	return clip(strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ", "\t", " ").Replace(s), n)
}

func compactJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

func clock(t time.Time) string { return t.Local().Format("15:04:05.000") }

// printHistory prints a saga as a tree: a header, then what happened in
// order (steps, with their decisions, arguments, outcome and undo; the
// saga's own events). focus is the id the user asked for: a record id
// marks its step.
func printHistory(w io.Writer, h *traces.History, focus string, color bool) error {
	s := h.Saga
	p := func(status, text string) string { return tpaint(color, status, text) }
	focusStep := 0
	if sagaID, step, ok := traces.ParseID(focus); ok && sagaID == s.ID {
		focusStep = step
	}
	var b strings.Builder
	fmt.Fprintf(&b, "saga %s  %s\n", s.ID, p(string(s.Status), string(s.Status)))
	root := &node{}
	span := ""
	if !s.Updated.IsZero() && !s.Created.IsZero() {
		span = " · last change after " + fmtDuration(s.Updated.Sub(s.Created))
	}
	root.add("scope %s · created %s · %d steps%s", s.Scope, s.Created.Local().Format("2006-01-02 15:04:05.000"), len(s.Steps), span)

	notes := map[int][]saga.Event{}
	for _, ev := range h.Events {
		if ev.Kind == saga.EvNote && ev.Step > 0 {
			notes[ev.Step] = append(notes[ev.Step], ev)
		}
	}
	addStep := func(st *saga.Step) {
		n := root.add("%s  step %d  %s/%s  %s  %s", clock(st.Started), st.N, st.Upstream, st.Tool,
			p(string(st.Status), string(st.Status)), stepTook(st))
		if st.N == focusStep {
			n.text += "  ◀"
		}
		for _, ev := range notes[st.N] {
			n.add("%s", oneLine(noteLine(ev.Note, p), 200))
		}
		if len(st.Args) > 0 {
			n.add("args    %s", oneLine(compactJSON(st.Args), 160))
		}
		if st.Error != "" {
			n.add("error   %s", oneLine(st.Error, 160))
		}
		if len(st.Result) > 0 {
			label := "result  "
			if st.Status == saga.ToolError {
				label = "error   "
			}
			n.add("%s%s", label, oneLine(resultLine(st.Result), 160))
		}
		addUndo(n, h, st, p)
	}

	if len(h.Events) == 0 {
		// Only the state is known: steps in order, then how it ended.
		for _, st := range s.Steps {
			addStep(st)
		}
		if s.AbortReason != "" {
			root.add("%s  %s", p("failed", "unwound"), s.AbortReason)
		}
	}
	for _, ev := range h.Events {
		switch ev.Kind {
		case saga.EvIntent:
			if st := s.Step(ev.Step); st != nil {
				addStep(st)
			}
		case saga.EvCommitted:
			root.add("%s  %s", clock(ev.Time), p("committed", "committed"))
		case saga.EvAborted:
			n := root.add("%s  %s  %s", clock(ev.Time), p("failed", "unwinding"), ev.Reason)
			if ev.By != "" {
				n.text += " (by " + ev.By + ")"
			}
		case saga.EvStatus:
			root.add("%s  status %s", clock(ev.Time), p(ev.Status, ev.Status))
		case saga.EvRetry:
			root.add("%s  retry of failed compensations (by %s) %s", clock(ev.Time), ev.By, ev.Reason)
		case saga.EvResolved:
			root.add("%s  step %d resolved by hand (by %s) %s", clock(ev.Time), ev.Step, ev.By, ev.Reason)
		case saga.EvNote:
			if ev.Step == 0 {
				root.add("%s  %s", clock(ev.Time), oneLine(noteLine(ev.Note, p), 200))
			}
		}
	}
	root.render(&b, "")
	_, err := io.WriteString(w, b.String())
	return err
}

// resultLine shows an MCP tool result briefly: its structured content if
// it has some, else its text, else its JSON.
func resultLine(raw json.RawMessage) string {
	var r struct {
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
		Structured json.RawMessage `json:"structuredContent"`
	}
	if json.Unmarshal(raw, &r) == nil {
		if len(r.Structured) > 0 && string(r.Structured) != "null" {
			return compactJSON(r.Structured)
		}
		var texts []string
		for _, c := range r.Content {
			if c.Type == "text" {
				texts = append(texts, c.Text)
			}
		}
		if len(texts) > 0 {
			return strings.Join(texts, " ")
		}
	}
	return compactJSON(raw)
}

// noteLine shows a journaled note: a policy decision, an approval
// request or decision, or any other note as its JSON.
func noteLine(raw json.RawMessage, p func(status, text string) string) string {
	n, _ := traces.ParseNote(raw)
	switch n.Type {
	case traces.NoteDecision:
		s := "policy  " + p(n.Verdict, n.Verdict)
		if n.DryRun {
			s += " (dry run: not enforced)"
		}
		if len(n.Reasons) > 0 {
			s += "  " + strings.Join(n.Reasons, "; ")
		}
		if n.Error != "" {
			s += "  error: " + n.Error
		}
		if n.DurationUS > 0 {
			s += "  " + fmtDuration(time.Duration(n.DurationUS)*time.Microsecond)
		}
		return s
	case traces.NoteApprovalRequested:
		s := "approval  " + p(traces.ApprovalPending, "requested") + " " + n.ID
		if n.Request != nil && !n.Request.Expires.IsZero() {
			s += ", expires " + clock(n.Request.Expires)
		}
		return s
	case traces.NoteApprovalDecided:
		out := n.Outcome()
		s := "approval  " + p(out, out)
		if n.Decision.By != "" && out != traces.ApprovalExpired {
			s += " by " + n.Decision.By
		}
		if n.Decision.Reason != "" {
			s += ": " + n.Decision.Reason
		}
		return s
	}
	label := "note"
	if n.Type != "" {
		label += " " + n.Type
	}
	return label + "  " + compactJSON(raw)
}

func stepTook(st *saga.Step) string {
	if st.Finished.IsZero() {
		return "(no outcome yet)"
	}
	return fmtDuration(st.Finished.Sub(st.Started))
}

// addUndo adds what became of a step's compensation, with its attempts.
func addUndo(n *node, h *traces.History, st *saga.Step, p func(status, text string) string) {
	switch {
	case st.Status == saga.Denied || st.Status == saga.NotSent:
		n.add("undo    none needed (the call was not sent)")
		return
	case st.Status == saga.InputRequired:
		n.add("undo    none needed (the upstream asked for input and did not run it)")
		return
	case st.ReadOnly:
		n.add("undo    none needed (read-only)")
		return
	case st.Compensator == nil || st.Irreversible:
		if st.Comp.Status == saga.CompIrreversible {
			n.add("undo    %s: this step could not be undone", p("irreversible", "irreversible"))
		} else {
			n.add("undo    none (irreversible)")
		}
		return
	}
	c := st.Compensator
	up := c.Upstream
	if up == "" {
		up = st.Upstream
	}
	status := "not run"
	if st.Comp.Status != saga.CompNone {
		status = p(string(st.Comp.Status), string(st.Comp.Status))
	}
	u := n.add("undo    %s/%s  %s", up, c.Tool, status)
	for _, r := range h.Records {
		if r.Kind == traces.KindCompensation && r.Step == st.N && r.DurationMS != nil {
			u.text += "  " + took(r.DurationMS)
		}
	}
	attempts := h.Attempts(st.N)
	for _, a := range attempts {
		switch {
		case a.Finished.IsZero():
			u.add("attempt %d  %s  %s", a.N, clock(a.Started), p("running", "running"))
		case a.OK:
			u.add("attempt %d  %s  %s  %s", a.N, clock(a.Started), p("compensated", "ok"), fmtDuration(a.Finished.Sub(a.Started)))
		default:
			u.add("attempt %d  %s  %s  %s  %s", a.N, clock(a.Started), p("failed", "failed"), fmtDuration(a.Finished.Sub(a.Started)), oneLine(a.Error, 120))
		}
	}
	switch {
	case len(attempts) > 0:
	case st.Comp.Attempts == 1:
		u.text += "  (1 attempt)"
	case st.Comp.Attempts > 1:
		u.text += fmt.Sprintf("  (%d attempts)", st.Comp.Attempts)
	}
	if st.Comp.LastError != "" && (len(attempts) == 0 || st.Comp.Status == saga.CompNeedsHuman) {
		u.add("last error  %s", oneLine(st.Comp.LastError, 120))
	}
	if st.Comp.Status == saga.CompFailed && !st.Comp.NextAttempt.IsZero() {
		u.add("next attempt at %s", clock(st.Comp.NextAttempt))
	}
}
