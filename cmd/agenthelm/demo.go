package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/agenthelm/agenthelm/approvals"
	"github.com/agenthelm/agenthelm/config"
	"github.com/agenthelm/agenthelm/engine"
	"github.com/agenthelm/agenthelm/examples/configs"
	"github.com/agenthelm/agenthelm/examples/toolservers"
	"github.com/agenthelm/agenthelm/journal"
	"github.com/agenthelm/agenthelm/saga"
	"github.com/agenthelm/agenthelm/traces"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"
)

// demoOptions are the demo's flags.
type demoOptions struct {
	interactive  bool
	keep         bool
	noColor      bool
	approveAfter time.Duration
	journalDir   string // empty: a temporary journal, removed at the end
}

func newDemoCmd(g *globals) *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Watch agenthelm work: a scripted agent run with an approval, a failure and a rollback",
		Long: `demo runs everything in this process: three example MCP servers (hotel,
payments, email), agenthelm in front of them with a temporary journal and the
configuration in examples/configs/demo.yaml, and a scripted agent that talks to
agenthelm over streamable HTTP with the official MCP Go SDK.

The agent books a hotel, charges the customer a large amount (held for
approval), and emails the receipt to a mailbox that bounces. agenthelm then
undoes the booking and the charge, in reverse order. Each step is told as it
happens; nothing here is simulated: the calls go through the same code as
` + "`agenthelm serve`" + `.

Nothing needs setting up and nothing is left behind (unless --keep, or
--journal, which keeps the journal for the sagas commands to read).`,
		Example: `  agenthelm demo
  agenthelm demo --interactive        # approve the held charge yourself
  agenthelm demo --keep               # then point your own agent at the sidecar
  agenthelm demo --journal demo-journal   # keep the journal, then read it back:
  AGENTHELM_DATA_DIR=demo-journal agenthelm sagas list`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.interactive, "interactive", false, "approve or deny the held call yourself (on stdin)")
	f.BoolVar(&o.keep, "keep", false, "keep the sidecar and example servers running after the run, until Ctrl-C")
	f.BoolVar(&o.noColor, "no-color", false, "no colour, even on a terminal (NO_COLOR also works)")
	f.DurationVar(&o.approveAfter, "approve-after", 2*time.Second, "without --interactive, approve a held call after this pause")
	f.StringVar(&o.journalDir, "journal", "", "keep the journal in this directory (new or empty) instead of a temporary one")
	return cmd
}

// demoServersHook, when set (by tests), is given the example servers as
// soon as they run, so that their state can be checked after the demo.
var demoServersHook func(map[string]toolservers.Server)

// demoStep is one call of the scripted agent.
type demoStep struct {
	upstream, tool string
	args           json.RawMessage
	// intent is what the agent is doing, in words.
	intent string
	// held says the shipped policy holds this call for approval.
	held bool
	// wantError is a text the call's error result must contain; empty
	// means the call must succeed.
	wantError string
}

var demoScript = []demoStep{
	{
		upstream: "hotel", tool: "book_hotel",
		args:   json.RawMessage(`{"guest":"Ana Lima","hotel":"Hotel Lisboa Centro","nights":3}`),
		intent: "book 3 nights in Lisbon for Ana Lima",
	},
	{
		upstream: "payments", tool: "charge_customer",
		args:   json.RawMessage(`{"customer":"cus_ana_lima","amount":1840.00,"currency":"EUR"}`),
		intent: "charge her EUR 1,840.00 for the stay",
		held:   true,
	},
	{
		upstream: "email", tool: "send_email",
		args: json.RawMessage(`{"to":"ana.lima@` + toolservers.BounceDomain + `",` +
			`"subject":"Your stay at Hotel Lisboa Centro",` +
			`"body":"Booking confirmed: 3 nights, EUR 1,840.00 charged. See you soon!"}`),
		intent:    "email her the receipt",
		wantError: toolservers.ErrMailboxUnavailable,
	},
}

func runDemo(ctx context.Context, g *globals, o demoOptions) error {
	level := g.logLevel
	if level == "" {
		level = "warn" // the narration is the demo's output; logs only when something is wrong
	}
	log, err := newLogger(g.stderr, level, g.logFormat)
	if err != nil {
		return err
	}
	if o.journalDir != "" {
		if err := emptyDir(o.journalDir); err != nil {
			return fmt.Errorf("--journal: %w", err)
		}
	}
	n := newNarrator(g.stdout, !o.noColor && colorTerminal(g.stdout))

	n.title("agenthelm demo", "an agent books a trip; a later step fails; agenthelm undoes the rest")

	// The example tool servers, each on its own loopback port.
	servers := map[string]*toolservers.Running{}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		for _, r := range servers {
			_ = r.Close(cctx)
		}
	}()
	for _, name := range toolservers.Names {
		r, err := toolservers.Start(ctx, name, toolservers.Options{Logger: log})
		if err != nil {
			return err
		}
		servers[name] = r
	}
	if demoServersHook != nil {
		m := map[string]toolservers.Server{}
		for name, r := range servers {
			m[name] = r.Server
		}
		demoServersHook(m)
	}

	// The sidecar, configured by examples/configs/demo.yaml with the
	// servers' real addresses and a temporary journal (or --journal).
	dir, lifetime := o.journalDir, "kept"
	if dir == "" {
		if dir, err = os.MkdirTemp("", "agenthelm-demo-"); err != nil {
			return fmt.Errorf("journal directory: %w", err)
		}
		defer os.RemoveAll(dir)
		lifetime = "temporary"
	}
	cfg, err := demoConfig(dir, servers)
	if err != nil {
		return err
	}
	sc, err := startSidecar(ctx, cfg, log)
	wired := wiring{journal: true, saga: true, policy: true, approvals: true}
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Duration(cfg.Limits.ShutdownGrace))
		defer cancel()
		_ = sc.Close(cctx)
	}()

	n.section("setup")
	for _, name := range toolservers.Names {
		n.line(name, cCyan, "example MCP server  %s", servers[name].URL())
	}
	n.line("agenthelm", cBold, "sidecar             %s", sc.URL("{"+strings.Join(toolservers.Names, ",")+"}"))
	n.line("journal", cBold, "Badger, synced      %s (%s)", dir, lifetime)
	n.line("config", cBold, "examples/configs/demo.yaml (embedded), upstream URLs and journal set as above")
	if missing := wired.missing(); len(missing) > 0 {
		n.line("wiring", cYellow, "%s %s", n.style(cYellow, "not yet wired:"), strings.Join(missing, ", "))
	}

	// The agent: the official MCP Go SDK over streamable HTTP, one session
	// per upstream, all through agenthelm. It knows nothing of sagas.
	client := mcp.NewClient(&mcp.Implementation{Name: "agenthelm-demo-agent", Version: "1.0.0"}, nil)
	sessions := map[string]*mcp.ClientSession{}
	defer func() {
		for _, s := range sessions {
			_ = s.Close()
		}
	}()
	for _, name := range toolservers.Names {
		cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: sc.URL(name)}, nil)
		if err != nil {
			return fmt.Errorf("agent: connect to %s through agenthelm: %w", name, err)
		}
		sessions[name] = cs
	}

	tail := &journalTail{j: sc.stack.journal, n: n}
	var failed *mcp.CallToolResult
	for i := range demoScript {
		step := &demoScript[i]
		n.section(fmt.Sprintf("step %d  %s.%s", i+1, step.upstream, step.tool))
		n.line("agent", cCyan, "wants to %s", step.intent)
		n.line("", "", "→ %s %s", step.tool, step.args)
		if !wired.policy {
			n.notWired("policy", "policy gate", "allow, deny or hold for approval, decided here")
		}
		if step.held && !wired.approvals {
			n.notWired("approval", "approvals", "the shipped policy will hold this charge for a")
			if o.interactive {
				n.more("human; --interactive will then ask you here whether to approve it")
			} else {
				n.more("human; the demo then approves it after %s, or asks you with --interactive", o.approveAfter)
			}
		}
		res, err := callThroughGate(ctx, n, sessions[step.upstream], sc.stack.broker, step, g.stdin, o)
		if err != nil {
			return fmt.Errorf("step %d (%s.%s): %w", i+1, step.upstream, step.tool, err)
		}
		// What agenthelm journaled for this call, read back from the
		// journal: the intent (before forwarding) and the outcome (before
		// answering).
		if err := tail.show(ctx, i+1); err != nil {
			return err
		}
		text := resultText(res)
		if res.IsError {
			n.line("agent", cRed, "← error: %s", firstText(res))
		} else {
			n.line("agent", cGreen, "← ok: %s", text)
		}
		if err := step.check(res, text); err != nil {
			return fmt.Errorf("step %d (%s.%s): %w", i+1, step.upstream, step.tool, err)
		}
		if res.IsError {
			failed = res
			break
		}
	}

	n.section("rollback")
	if failed != nil {
		// The engine unwound the saga before it answered the failed call;
		// the journal has every compensation, before and after.
		if err := tail.show(ctx, 0); err != nil {
			return err
		}
		if rb, ok := failed.Meta[engine.MetaRollback].(map[string]any); ok {
			text, _ := rb["text"].(string)
			n.line("agent", cMagenta, "was told, in the error result and its _meta[%q]:", engine.MetaRollback)
			for _, l := range wrapText(text, textWidth) {
				n.more("%s", l)
			}
		} else {
			n.line("agent", cYellow, "got no rollback report (_meta[%q] is missing)", engine.MetaRollback)
		}
	}

	n.section("the tool servers after the run")
	showState(n, servers)

	if tail.saga != "" {
		s, err := sc.stack.engine.Load(ctx, tail.saga)
		if err != nil {
			return fmt.Errorf("load saga %s: %w", tail.saga, err)
		}
		n.section("agenthelm sagas show " + tail.saga)
		n.block(func(w io.Writer) error { return printSaga(w, s, n.color) })
		h, err := traces.Load(ctx, sc.stack.journal, tail.saga)
		if err != nil {
			return fmt.Errorf("trace of saga %s: %w", tail.saga, err)
		}
		n.section("agenthelm traces show " + tail.saga)
		n.block(func(w io.Writer) error {
			// The demo fits a 100-column terminal: long lines are clipped
			// (agenthelm traces show prints them whole).
			var b strings.Builder
			if err := printHistory(&b, h, "", n.color); err != nil {
				return err
			}
			for _, line := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
				if _, err := fmt.Fprintln(w, clipVisible(line, 98)); err != nil {
					return err
				}
			}
			return nil
		})
	}

	n.section("done")
	n.line("result", cGreen, "%d calls, 1 failure, %d steps undone in reverse order: the demo ran as scripted",
		len(demoScript), tail.undone)
	if o.keep {
		return keepRunning(ctx, n, sc, dir)
	}
	return nil
}

// check says whether a step ended as the script expects.
func (s *demoStep) check(res *mcp.CallToolResult, text string) error {
	switch {
	case s.wantError == "" && res.IsError:
		return fmt.Errorf("unexpected error result: %s", text)
	case s.wantError != "" && !res.IsError:
		return fmt.Errorf("succeeded, but the demo expects it to fail with %q", s.wantError)
	case s.wantError != "" && !strings.Contains(text, s.wantError):
		return fmt.Errorf("error %q, want one containing %q", text, s.wantError)
	}
	return nil
}

// demoConfig is examples/configs/demo.yaml pointed at the running example
// servers, with a journal in dir and listeners on free loopback ports.
func demoConfig(dir string, servers map[string]*toolservers.Running) (*config.Config, error) {
	cfg, err := config.Parse(configs.Demo, "examples/configs/demo.yaml")
	if err != nil {
		return nil, err
	}
	for name, r := range servers {
		u, ok := cfg.Upstreams[name]
		if !ok {
			return nil, fmt.Errorf("examples/configs/demo.yaml: no upstream %q", name)
		}
		u.URL = r.URL()
		cfg.Upstreams[name] = u
	}
	cfg.Journal.Dir = dir
	cfg.Listen.MCP, cfg.Listen.Admin, cfg.Listen.HTTP = "127.0.0.1:0", "127.0.0.1:0", ""
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("demo configuration: %w", err)
	}
	return cfg, nil
}

// emptyDir checks that dir is missing or empty: the demo reads its one
// saga back from the journal, so it never shares one.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case len(entries) > 0:
		return fmt.Errorf("%s is not empty: the demo needs a journal of its own", dir)
	}
	return nil
}

// keepRunning leaves the sidecar up for the user's own agent and the CLI
// until ctx ends (Ctrl-C).
func keepRunning(ctx context.Context, n *narrator, sc *sidecar, dir string) error {
	n.section("still running (--keep): Ctrl-C to stop")
	for _, name := range toolservers.Names {
		n.line(name, cCyan, "%s", sc.URL(name))
	}
	n.line("admin", cBold, "http://%s/healthz", sc.adminAddr())
	n.line("try", cBold, "AGENTHELM_DATA_DIR=%s agenthelm sagas list", dir)
	<-ctx.Done()
	return nil
}

// showState prints what the example servers hold now: the effects the
// saga left behind.
func showState(n *narrator, servers map[string]*toolservers.Running) {
	hotel := servers["hotel"].Server.(*toolservers.Hotel)
	for _, b := range hotel.Bookings() {
		n.line("hotel", stateColor(b.Status == toolservers.BookingCancelled), "%s  %s, %s, %d nights: %s",
			b.ID, b.Guest, b.Hotel, b.Nights, b.Status)
	}
	payments := servers["payments"].Server.(*toolservers.Payments)
	for _, c := range payments.Charges() {
		refund := ""
		if c.RefundID != "" {
			refund = " (" + c.RefundID + ")"
		}
		n.line("payments", stateColor(c.Status == toolservers.ChargeRefunded), "%s  %s %s for %s: %s%s",
			c.ID, c.Currency, money(c.Amount), c.Customer, c.Status, refund)
	}
	email := servers["email"].Server.(*toolservers.Email)
	sent := email.Sent()
	n.line("email", stateColor(len(sent) == 0), "%d sent, %d failed", len(sent), email.Attempts()-len(sent))
}

func stateColor(undone bool) string {
	if undone {
		return cGreen
	}
	return cYellow
}

// --- the sidecar -----------------------------------------------------------

// wiring says which boxes sit behind the interception point.
type wiring struct {
	policy, journal, saga, approvals bool
}

func (w wiring) missing() []string {
	var m []string
	for _, b := range []struct {
		name string
		on   bool
	}{{"policy gate", w.policy}, {"journal", w.journal}, {"saga engine", w.saga}, {"approvals", w.approvals}} {
		if !b.on {
			m = append(m, b.name)
		}
	}
	return m
}

// --- the journal, read back ----------------------------------------------------

// journalTail prints a saga's journal records as they appear.
type journalTail struct {
	j       *journal.Journal
	n       *narrator
	saga    string
	seen    uint64
	steps   map[int]*saga.Intent
	started map[int]time.Time // step -> time of its intent
	undone  int
}

// show prints the saga's records not shown yet: up to the outcome of step
// upTo, or all of them when upTo is 0.
func (t *journalTail) show(ctx context.Context, upTo int) error {
	if t.saga == "" {
		heads, err := t.j.List(ctx, journal.Filter{})
		if err != nil {
			return fmt.Errorf("read the journal: %w", err)
		}
		if len(heads) != 1 {
			return fmt.Errorf("the demo's journal holds %d sagas, want 1", len(heads))
		}
		t.saga, t.steps, t.started = heads[0].Saga, map[int]*saga.Intent{}, map[int]time.Time{}
	}
	evs, err := t.j.Events(ctx, t.saga)
	if err != nil {
		return fmt.Errorf("read saga %s from the journal: %w", t.saga, err)
	}
	for _, je := range evs {
		if je.Seq <= t.seen {
			continue
		}
		var ev saga.Event
		if err := json.Unmarshal(je.Body, &ev); err != nil {
			return fmt.Errorf("journal record %d of saga %s: %w", je.Seq, t.saga, err)
		}
		t.print(je.Seq, ev)
		t.seen = je.Seq
		if upTo > 0 && ev.Kind == saga.EvOutcome && ev.Step == upTo {
			break
		}
	}
	return nil
}

func (t *journalTail) print(seq uint64, ev saga.Event) {
	label, style := "journal", cMagenta
	kind := map[saga.EventKind]string{saga.EvCompStarted: "compensate", saga.EvCompFinished: "compensated"}[ev.Kind]
	if kind == "" {
		kind = string(ev.Kind)
	}
	if ev.Kind == saga.EvCompFinished && !ev.OK {
		kind = "not undone"
	}
	if ev.Kind == saga.EvNote {
		kind = "approval"
		if strings.Contains(string(ev.Note), `"type":"decision"`) {
			kind = "policy"
		}
	}
	head := fmt.Sprintf("#%-2d %-11s ", seq, kind)
	say := func(format string, args ...any) {
		t.n.line(label, style, "%s%s", head, fmt.Sprintf(format, args...))
	}
	switch ev.Kind {
	case saga.EvOpened:
		say("saga %s (scope %s)", t.saga, ev.Scope)
	case saga.EvIntent:
		in := ev.Intent
		t.steps[ev.Step], t.started[ev.Step] = in, ev.Time
		undo := "undo: none (read-only)"
		switch {
		case in.Irreversible:
			undo = "undo: none (irreversible)"
		case in.Compensator != nil:
			undo = "undo: " + in.Compensator.Tool
		case !in.ReadOnly:
			undo = "undo: none"
		}
		say("step %d %s/%s, %s", ev.Step, in.Upstream, in.Tool, undo)
	case saga.EvOutcome:
		detail := ""
		if ev.Error != "" {
			detail = ": " + ev.Error
		} else if ev.Status != string(saga.Succeeded) {
			detail = ": " + firstLine(resultText(resultOf(ev.Result)))
		}
		took := ev.Time.Sub(t.started[ev.Step])
		say("step %d %s in %.1fms%s", ev.Step, ev.Status, float64(took.Microseconds())/1000, detail)
	case saga.EvAborted:
		say("%s", ev.Reason)
	case saga.EvCompStarted:
		in := t.steps[ev.Step]
		call := "?"
		if in != nil && in.Compensator != nil {
			call = in.Compensator.Upstream + "/" + in.Compensator.Tool
		}
		say("step %d: %s, attempt %d", ev.Step, call, ev.Attempt)
	case saga.EvCompFinished:
		switch {
		case ev.OK:
			t.undone++
			say("step %d: %s", ev.Step, structuredOrText(ev.Result))
		case ev.Status != "":
			say("step %d %s: %s", ev.Step, ev.Status, ev.Error)
		default:
			say("step %d failed: %s", ev.Step, ev.Error)
		}
	case saga.EvStatus:
		say("saga %s", ev.Status)
	case saga.EvCommitted:
		say("%s", ev.Reason)
	case saga.EvNote:
		t.printNote(ev, say)
	default:
		body, _ := json.Marshal(ev)
		say("%s", body)
	}
}

// printNote shows the policy's decisions and the approvals, as journaled.
func (t *journalTail) printNote(ev saga.Event, say func(string, ...any)) {
	var n struct {
		Type     string   `json:"type"`
		Verdict  string   `json:"verdict"`
		Revision string   `json:"revision"`
		Reasons  []string `json:"reasons"`
		ID       string   `json:"id"`
		Decision *struct {
			Approved, Expired bool
			By, Reason        string
		} `json:"decision"`
	}
	_ = json.Unmarshal(ev.Note, &n)
	switch n.Type {
	case "decision":
		why := ""
		if len(n.Reasons) > 0 {
			why = ": " + strings.Join(n.Reasons, "; ")
		}
		say("step %d %s (revision %s)%s", ev.Step, n.Verdict, n.Revision, why)
	case "approval_requested":
		say("step %d held: %s", ev.Step, n.ID)
	case "approval_decided":
		verdict := "rejected"
		switch {
		case n.Decision != nil && n.Decision.Approved:
			verdict = "approved"
		case n.Decision != nil && n.Decision.Expired:
			verdict = "expired"
		}
		by := ""
		if n.Decision != nil {
			by = " by " + n.Decision.By
		}
		say("step %d %s %s%s", ev.Step, n.ID, verdict, by)
	default:
		say("%s", ev.Note)
	}
}

// callThroughGate makes one scripted call. A call the policy holds for
// approval blocks until decided: the demo watches the approvals broker,
// and approves after a pause, or asks the person at the terminal with
// --interactive, through the same Decide the CLI and admin API use.
func callThroughGate(ctx context.Context, n *narrator, cs *mcp.ClientSession, broker *approvals.Broker, step *demoStep, in io.Reader, o demoOptions) (*mcp.CallToolResult, error) {
	type answer struct {
		res *mcp.CallToolResult
		err error
	}
	done := make(chan answer, 1)
	go func() {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: step.tool, Arguments: step.args})
		done <- answer{res, err}
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case a := <-done:
			return a.res, a.err
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
		for _, r := range broker.Pending() {
			if r.Tool != step.tool {
				continue
			}
			n.line("policy", cYellow, "held for approval %s: %s", r.ID, strings.Join(r.Reasons, "; "))
			approve, reason, err := decideHeld(ctx, n, in, o.interactive, o.approveAfter, fmt.Sprintf("%s %s", step.tool, r.Arguments))
			if err != nil {
				return nil, err
			}
			if _, err := broker.Decide(r.ID, approve, "demo-operator", reason); err != nil {
				return nil, fmt.Errorf("decide approval %s: %w", r.ID, err)
			}
		}
	}
}

// resultOf decodes a tools/call result as the journal holds it.
func resultOf(raw json.RawMessage) *mcp.CallToolResult {
	var res mcp.CallToolResult
	_ = json.Unmarshal(raw, &res)
	return &res
}

// structuredOrText shows a journaled result compactly: its
// structuredContent, else its text.
func structuredOrText(raw json.RawMessage) string {
	var r struct {
		StructuredContent json.RawMessage `json:"structuredContent"`
	}
	if json.Unmarshal(raw, &r) == nil && len(r.StructuredContent) > 0 {
		return string(r.StructuredContent)
	}
	return resultText(resultOf(raw))
}

// --- approvals ---------------------------------------------------------------

// decideHeld makes the decision on a call held for approval: with
// interactive it asks on in, otherwise it approves after wait. It is what
// the demo does when the approvals box reports a held call.
func decideHeld(ctx context.Context, n *narrator, in io.Reader, interactive bool, wait time.Duration, what string) (approve bool, reason string, err error) {
	if !interactive {
		n.line("approval", cYellow, "held: %s; approving in %s (--interactive to decide yourself)", what, wait)
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false, "", ctx.Err()
		case <-t.C:
		}
		n.line("approval", cGreen, "approved by the demo's auto-approver")
		return true, "auto-approved by agenthelm demo", nil
	}
	n.prompt("approval", "held: %s. Approve? [y/N] ", what)
	answer := make(chan string, 1)
	go func() { // ends when in yields a line or EOF
		line, _ := bufio.NewReader(in).ReadString('\n')
		answer <- strings.ToLower(strings.TrimSpace(line))
	}()
	select {
	case <-ctx.Done():
		return false, "", ctx.Err()
	case a := <-answer:
		if a == "y" || a == "yes" {
			n.line("approval", cGreen, "approved by you")
			return true, "approved at the demo prompt", nil
		}
		n.line("approval", cRed, "denied by you")
		return false, "denied at the demo prompt", nil
	}
}

// --- narration ---------------------------------------------------------------

// ANSI styles, applied only when the narrator has colour on.
const (
	cBold    = "\x1b[1m"
	cDim     = "\x1b[2m"
	cRed     = "\x1b[31m"
	cGreen   = "\x1b[32m"
	cYellow  = "\x1b[33m"
	cMagenta = "\x1b[35m"
	cCyan    = "\x1b[36m"
	cReset   = "\x1b[0m"
)

// textWidth is the room for text after a line's label: 100 columns in all.
const textWidth = 100 - 12

// narrator writes the demo's story as it happens, one line at a time,
// within 100 columns: a 2-space indent, a 10-column label, the text.
type narrator struct {
	mu    sync.Mutex
	w     io.Writer
	color bool
}

func newNarrator(w io.Writer, color bool) *narrator { return &narrator{w: w, color: color} }

func (n *narrator) style(s, text string) string {
	if !n.color || s == "" {
		return text
	}
	return s + text + cReset
}

func (n *narrator) printf(format string, args ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	fmt.Fprintf(n.w, format, args...)
}

func (n *narrator) title(name, sub string) {
	n.printf("%s  %s\n", n.style(cBold, name), n.style(cDim, sub))
}

func (n *narrator) section(name string) {
	n.printf("\n%s\n", n.style(cBold, name))
}

// line prints "  label     text"; label is coloured with style ("": plain).
func (n *narrator) line(label, style, format string, args ...any) {
	n.printf("  %s %s\n", n.style(style, fmt.Sprintf("%-9s", label)), clip(fmt.Sprintf(format, args...), textWidth))
}

// more continues the previous line's text.
func (n *narrator) more(format string, args ...any) {
	n.printf("%12s%s\n", "", n.style(cDim, clip(fmt.Sprintf(format, args...), textWidth)))
}

// notWired marks honestly what a box that is not attached yet will do.
func (n *narrator) notWired(label, box, format string, args ...any) {
	head := "not yet wired (" + box + " pending):"
	n.printf("  %s %s %s\n", n.style(cYellow, fmt.Sprintf("%-9s", label)),
		n.style(cYellow, head), clip(fmt.Sprintf(format, args...), textWidth-len(head)-1))
}

// block lets f write a multi-line view (a table) at the current position.
func (n *narrator) block(f func(io.Writer) error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := f(n.w); err != nil {
		fmt.Fprintf(n.w, "  (%v)\n", err)
	}
}

func (n *narrator) prompt(label, format string, args ...any) {
	n.printf("  %s %s", n.style(cYellow, fmt.Sprintf("%-9s", label)), fmt.Sprintf(format, args...))
}

// colorTerminal reports whether w is a terminal that wants colour: a
// character device other than /dev/null, with NO_COLOR unset and TERM not
// "dumb".
func colorTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	if null, err := os.Stat(os.DevNull); err == nil && os.SameFile(fi, null) {
		return false
	}
	return true
}

// resultText is a tool result's text content, joined.
func resultText(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, t.Text)
		}
	}
	return strings.Join(parts, " ")
}

// clip shortens s to at most max runes, marking the cut.
func clip(s string, max int) string {
	r := []rune(s)
	if len(r) <= max {
		return s
	}
	return string(r[:max-1]) + "…"
}

// firstText is a tool result's first text content.
func firstText(res *mcp.CallToolResult) string {
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			return t.Text
		}
	}
	return ""
}

// firstLine is s up to its first line break.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// wrapText breaks s into lines of at most width runes, at spaces.
func wrapText(s string, width int) []string {
	var lines []string
	var cur []rune
	for _, w := range strings.Fields(s) {
		rw := []rune(w)
		if len(cur) > 0 && len(cur)+1+len(rw) > width {
			lines = append(lines, string(cur))
			cur = cur[:0]
		}
		if len(cur) > 0 {
			cur = append(cur, ' ')
		}
		cur = append(cur, rw...)
	}
	if len(cur) > 0 {
		lines = append(lines, string(cur))
	}
	return lines
}

// money formats an amount with thousands separators: 1840 → "1,840.00".
func money(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	intPart, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	for i, r := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 && intPart[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String() + "." + frac
}

// clipVisible clips a line to n visible characters, not counting ANSI
// colour sequences (which it keeps whole).
func clipVisible(line string, n int) string {
	var b strings.Builder
	visible := 0
	for i := 0; i < len(line); {
		if line[i] == 0x1b { // ESC [ ... m
			j := strings.IndexByte(line[i:], 'm')
			if j < 0 {
				break
			}
			b.WriteString(line[i : i+j+1])
			i += j + 1
			continue
		}
		r, size := utf8.DecodeRuneInString(line[i:])
		if visible == n-1 && utf8.RuneCountInString(stripANSI(line[i:])) > 1 {
			b.WriteString("…")
			if strings.Contains(line[i:], "\x1b[") {
				b.WriteString("\x1b[0m")
			}
			return b.String()
		}
		b.WriteRune(r)
		visible++
		i += size
	}
	return b.String()
}

func stripANSI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b {
			if j := strings.IndexByte(s[i:], 'm'); j >= 0 {
				i += j
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
