package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/admin"
	"github.com/agenthelm/agenthelm/engine"
	"github.com/agenthelm/agenthelm/examples/toolservers"
	"github.com/agenthelm/agenthelm/journal"
	"github.com/agenthelm/agenthelm/saga"
	"github.com/agenthelm/agenthelm/traces"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	_ "modernc.org/sqlite"
)

// exampleServers starts the example tool servers on loopback.
func exampleServers(t *testing.T) map[string]*toolservers.Running {
	t.Helper()
	servers := map[string]*toolservers.Running{}
	for _, name := range toolservers.Names {
		r, err := toolservers.Start(context.Background(), name, toolservers.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close(context.Background()) })
		servers[name] = r
	}
	return servers
}

// examplesConfig is the demo's configuration (examples/configs/demo.yaml)
// on free ports, with an allow-all policy in dry-run mode so that no call
// waits for an approval.
func examplesConfig(t *testing.T, servers map[string]*toolservers.Running, extra string) string {
	t.Helper()
	policies := t.TempDir()
	if err := os.WriteFile(filepath.Join(policies, "allow.rego"), []byte(allowAllPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`
listen: {mcp: 127.0.0.1:0, admin: 127.0.0.1:0}
journal: {dir: $DIR/data}
policy: {dir: %q, mode: dry-run}
saga: {idle_commit: 1h}
upstreams:
  hotel:
    url: %s
    trusted: true
    tools:
      book_hotel:
        compensate: {tool: cancel_hotel_booking, args: '{booking_id: .result.structuredContent.booking_id}'}
  payments:
    url: %s
    trusted: true
    tools:
      charge_customer:
        compensate: {tool: refund_customer, args: '{charge_id: .result.structuredContent.charge_id}'}
  email:
    url: %s
    trusted: true
    tools:
      send_email: {irreversible: true}
%s`, policies, servers["hotel"].URL(), servers["payments"].URL(), servers["email"].URL(), extra)
}

// allowAllPolicy lets every call through, whatever the shipped default
// policy holds for approval.
const allowAllPolicy = `package agenthelm.authz

default decision := {"allow": true, "require_approval": false, "reasons": []}
`

// startExamplesServe runs `agenthelm serve` in front of the example
// servers.
func startExamplesServe(t *testing.T, servers map[string]*toolservers.Running, extra string) *sidecarProc {
	t.Helper()
	return startServe(t, examplesConfig(t, servers, extra))
}

// runRefundSaga is the demo's story through the sidecar: a booking and a
// charge succeed, the receipt email bounces, and agenthelm unwinds the
// saga. It returns when the saga is compensated.
func runRefundSaga(t *testing.T, sp *sidecarProc) {
	t.Helper()
	calls := []struct {
		upstream, tool string
		args           string
		fails          bool
	}{
		{"hotel", "book_hotel", `{"guest":"Ana Lima","hotel":"Hotel Lisboa Centro","nights":3}`, false},
		{"payments", "charge_customer", `{"customer":"cus_ana_lima","amount":1840,"currency":"EUR"}`, false},
		{"email", "send_email", `{"to":"ana@` + toolservers.BounceDomain + `","subject":"Your stay","body":"Booked."}`, true},
	}
	for _, c := range calls {
		cs := connect(t, "http://"+sp.mcp+"/mcp/"+c.upstream)
		res := callTool(t, cs, c.tool, json.RawMessage(c.args))
		cs.Close() // open sessions would hold up the sidecar's shutdown
		if res.IsError != c.fails {
			t.Fatalf("%s/%s: isError = %v, want %v: %+v", c.upstream, c.tool, res.IsError, c.fails, res.Content)
		}
	}
	waitFor(t, "the saga to be compensated", func() bool {
		return strings.Contains(sp.cli(t, "sagas", "list", "--status", "compensated"), "compensated")
	})
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cliErr runs an agenthelm command that must fail and returns its error.
func (sp *sidecarProc) cliErr(t *testing.T, args ...string) error {
	t.Helper()
	var out, errb bytes.Buffer
	args = append(args, "--config", sp.config)
	err := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	if err == nil {
		t.Fatalf("agenthelm %s succeeded, want an error:\n%s", strings.Join(args, " "), out.String())
	}
	return err
}

func decodeRecords(t *testing.T, out string) []traces.Record {
	t.Helper()
	var recs []traces.Record
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	return recs
}

type recordRow struct{ ID, Tool, Status, Outcome, SagaStatus string }

func recordRows(recs []traces.Record) []recordRow {
	var out []recordRow
	for _, r := range recs {
		id := r.ID[strings.LastIndexByte(r.ID, '#'):]
		out = append(out, recordRow{id, r.Upstream + "/" + r.ToolName, r.Status, r.Outcome, r.SagaStatus})
	}
	return out
}

// wantRefundRecords are the story's records, newest first.
var wantRefundRecords = []recordRow{
	{"#1.undo", "hotel/cancel_hotel_booking", "success", "compensated", "compensated"},
	{"#2.undo", "payments/refund_customer", "success", "compensated", "compensated"},
	{"#3", "email/send_email", "failed", "tool_error", "compensated"},
	{"#2", "payments/charge_customer", "success", "succeeded", "compensated"},
	{"#1", "hotel/book_hotel", "success", "succeeded", "compensated"},
}

// TestTracesCLI runs a saga that unwinds through a real sidecar in front of
// the example tool servers, then reads its trace with every traces
// command: through the sidecar's admin API, and from the journal once the
// sidecar is stopped.
func TestTracesCLI(t *testing.T) {
	servers := exampleServers(t)
	sp := startExamplesServe(t, servers, "")
	runRefundSaga(t, sp)
	dir := filepath.Dir(sp.config)

	// list, through the sidecar. Until the sidecar mounts the trace routes
	// the CLI builds the records from the saga routes, where compensations
	// have no times, so the order is checked further down.
	recs := decodeRecords(t, sp.cli(t, "traces", "list", "--json"))
	byID := cmpopts.SortSlices(func(a, b recordRow) bool { return a.ID < b.ID })
	if d := cmp.Diff(wantRefundRecords, recordRows(recs), byID); d != "" {
		t.Fatalf("traces list --json (-want +got):\n%s", d)
	}
	sagaID := recs[0].Saga
	rec := map[string]traces.Record{}
	for _, r := range recs {
		rec[strings.TrimPrefix(r.ID, sagaID)] = r
	}
	var args struct{ Guest string }
	if err := json.Unmarshal(rec["#1"].Arguments, &args); err != nil || args.Guest != "Ana Lima" {
		t.Errorf("book_hotel arguments = %s", rec["#1"].Arguments)
	}
	if got := rec["#3"].Error; !strings.Contains(got, toolservers.ErrMailboxUnavailable) {
		t.Errorf("send_email error = %q, want the server's message", got)
	}
	for _, r := range recs {
		if r.Kind == traces.KindCall && (r.DurationMS == nil || r.Started.IsZero()) {
			t.Errorf("%s: no timing: %+v", r.ID, r)
		}
	}
	table := sp.cli(t, "traces", "list", "--limit", "2")
	if lines := strings.Split(strings.TrimSpace(table), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[0], "STARTED") ||
		!strings.Contains(table, sagaID+"#") || strings.Contains(table, "\x1b[") {
		t.Errorf("traces list --limit 2 =\n%s\nwant a header and 2 rows, no colour", table)
	}

	// filter: the issue's example.
	failed := decodeRecords(t, sp.cli(t, "traces", "filter", "--status", "failed", "--tool-name", "send_email", "--since", "1h", "--json"))
	if d := cmp.Diff([]recordRow{wantRefundRecords[2]}, recordRows(failed)); d != "" {
		t.Errorf("traces filter --status failed --tool-name send_email --since 1h (-want +got):\n%s", d)
	}
	if out := sp.cli(t, "traces", "filter", "--status", "denied"); strings.TrimSpace(out) != "no trace records" {
		t.Errorf("traces filter --status denied = %q", out)
	}
	comps := decodeRecords(t, sp.cli(t, "traces", "filter", "--kind", "compensation", "--upstream", "payments", "--json"))
	if len(comps) == 1 && comps[0].Error != "" {
		t.Errorf("refund error = %q", comps[0].Error)
	}
	if d := cmp.Diff([]recordRow{wantRefundRecords[1]}, recordRows(comps)); d != "" {
		t.Errorf("traces filter --kind compensation --upstream payments (-want +got):\n%s", d)
	}
	for _, bad := range [][]string{{"--status", "broken"}, {"--since", "soon"}, {"--kind", "step"}} {
		if err := sp.cliErr(t, append([]string{"traces", "filter"}, bad...)...); !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("traces filter %s: error %q does not name the flag", bad, err)
		}
	}

	// show: the tree.
	checkShow(t, sp.cli(t, "traces", "show", sagaID+"#3"), sagaID, true)
	var h traces.History
	if err := json.Unmarshal([]byte(sp.cli(t, "traces", "show", sagaID, "--json")), &h); err != nil || h.Saga.ID != sagaID || len(h.Records) != 5 {
		t.Errorf("traces show --json = %+v, %v", h, err)
	}
	if err := sp.cliErr(t, "traces", "show", "s-nope"); !errors.Is(err, journal.ErrNotFound) && !strings.Contains(err.Error(), "not found") {
		t.Errorf("traces show s-nope = %v, want not found", err)
	}

	// export: SQLite, and the issue's query.
	db := filepath.Join(dir, "traces.db")
	if out := sp.cli(t, "traces", "export", "--output", db, "--format", "sqlite"); !strings.Contains(out, "exported 5 trace records") {
		t.Errorf("traces export = %q", out)
	}
	checkIssueQuery(t, db, map[string]int{"send_email": 1})
	if err := sp.cliErr(t, "traces", "export", "--output", db, "--format", "sqlite"); !errors.Is(err, traces.ErrExists) || !strings.Contains(err.Error(), "--force") {
		t.Errorf("export over an existing file = %v, want a refusal naming --force", err)
	}
	sp.cli(t, "traces", "export", "--output", db, "--force", "--status", "failed")
	checkIssueQuery(t, db, map[string]int{"send_email": 1})

	// CSV and JSON Lines, the format from the extension.
	csvPath := filepath.Join(dir, "traces.csv")
	sp.cli(t, "traces", "export", "-o", csvPath)
	if rows := readCSV(t, csvPath); len(rows) != 6 || rows[0][5] != "tool_name" {
		t.Errorf("CSV export = %q", rows)
	}
	jsonl := sp.cli(t, "traces", "export", "--output", "-", "--format", "jsonl", "--tool-name", "refund_customer")
	if lines := strings.Split(strings.TrimSpace(jsonl), "\n"); len(lines) != 1 || !strings.Contains(lines[0], `"tool_name":"refund_customer"`) {
		t.Errorf("export to stdout as JSON Lines = %q", jsonl)
	}
	for _, bad := range [][]string{{"--output", filepath.Join(dir, "x.txt")}, {"--output", "-", "--format", "sqlite"}, {"--output", "x.csv", "--format", "xml"}} {
		sp.cliErr(t, append([]string{"traces", "export"}, bad...)...)
	}

	// Offline: the same records straight from the journal, now with the
	// compensations' times and the policy's decisions (the events are read).
	sp.stop(t)
	offline := decodeRecords(t, sp.cli(t, "traces", "list", "--json"))
	if d := cmp.Diff(wantRefundRecords, recordRows(offline)); d != "" {
		t.Errorf("traces list --json offline (-want +got):\n%s", d)
	}
	for _, r := range offline {
		if r.DurationMS == nil {
			t.Errorf("offline %s has no duration", r.ID)
		}
		if want := map[string]string{traces.KindCall: "allow", traces.KindCompensation: ""}[r.Kind]; r.Decision != want {
			t.Errorf("offline %s: decision %q, want %q", r.ID, r.Decision, want)
		}
	}
	checkShow(t, sp.cli(t, "traces", "show", sagaID+"#3"), sagaID, true)
	sp.cli(t, "traces", "export", "-o", csvPath, "--force")
	var tools []string
	for _, row := range readCSV(t, csvPath)[1:] {
		tools = append(tools, row[5])
	}
	if want := []string{"book_hotel", "charge_customer", "send_email", "refund_customer", "cancel_hotel_booking"}; !slices.Equal(tools, want) {
		t.Errorf("CSV export offline: tools %q, want oldest first %q", tools, want)
	}

	// Through an admin API with the trace routes mounted (as the sidecar
	// mounts them) and without (an older sidecar): the CLI gets the same
	// records either way, times aside.
	for _, mounted := range []bool{true, false} {
		paths := serveAdminOnJournal(t, dir, mounted)
		viaAdmin := decodeRecords(t, sp.cli(t, "traces", "list", "--json"))
		opts := []cmp.Option{}
		if !mounted {
			opts = append(opts, cmpopts.IgnoreFields(traces.Record{}, "Started", "Finished", "DurationMS", "Decision", "Approval", "Approver"),
				cmpopts.SortSlices(func(a, b traces.Record) bool { return a.ID < b.ID }))
		}
		if d := cmp.Diff(offline, viaAdmin, opts...); d != "" {
			t.Errorf("traces list through the admin API (trace routes %v) differs from the journal (-journal +admin):\n%s", mounted, d)
		}
		checkShow(t, sp.cli(t, "traces", "show", sagaID+"#3"), sagaID, mounted)
		got := paths()
		wantPath := map[bool]string{true: "/v1/traces", false: "/v1/sagas"}[mounted]
		if !strings.Contains(strings.Join(got, " "), wantPath) {
			t.Errorf("requests with trace routes %v = %q, want some to %s", mounted, got, wantPath)
		}
	}
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rows
}

// checkShow checks the tree `traces show SAGA#3` prints. withEvents: the
// saga's events were available (journal, trace routes), not only its state.
func checkShow(t *testing.T, show, sagaID string, withEvents bool) {
	t.Helper()
	want := []string{
		"saga " + sagaID + "  compensated\n",
		"step 1  hotel/book_hotel  succeeded",
		"│  ├─ args    {\"guest\":\"Ana Lima\",\"hotel\":\"Hotel Lisboa Centro\",\"nights\":3}\n",
		"│  ├─ result  {\"booking_id\":\"bk_0001\"",
		"│  └─ undo    hotel/cancel_hotel_booking  compensated",
		"step 2  payments/charge_customer  succeeded",
		"│  └─ undo    payments/refund_customer  compensated",
		"step 3  email/send_email  tool_error",
		"│  ├─ error   mailbox unavailable: ana@bounce.example",
		"│  └─ undo    none (irreversible)\n",
	}
	if withEvents {
		want = append(want, "│  ├─ policy  allow (dry run: not enforced)", "│     └─ attempt 1", "  ok  ", "unwinding  step 3 (send_email) failed: tool_error", "└─ ", "status compensated\n")
	} else {
		want = append(want, "(1 attempt)", "unwound  step 3 (send_email) failed: tool_error")
	}
	for _, w := range want {
		if !strings.Contains(show, w) {
			t.Errorf("traces show (events %v) lacks %q:\n%s", withEvents, w, show)
		}
	}
	if strings.Count(show, "◀") != 1 || !strings.Contains(show[strings.Index(show, "step 3"):], "◀") {
		t.Errorf("traces show %s#3 should mark step 3 only:\n%s", sagaID, show)
	}
}

// serveAdminOnJournal serves the admin API over the stopped sidecar's
// journal and points the CLI at it with the run file, as a running sidecar
// does. The function it returns stops it and returns the paths requested.
func serveAdminOnJournal(t *testing.T, dir string, traceRoutes bool) func() []string {
	t.Helper()
	ctx := context.Background()
	dataDir := filepath.Join(dir, "data")
	j, err := journal.Open(ctx, journal.Options{Dir: dataDir, Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	token, err := admin.ReadToken("", "", dataDir)
	if err != nil {
		t.Fatal(err)
	}
	eng := engine.New(engine.Options{Journal: j})
	opts := admin.Options{Token: token, Journal: j, Engine: eng}
	if traceRoutes {
		opts.Extra = admin.TraceRoutes(j)
	}
	var mu sync.Mutex
	var paths []string
	h := admin.Handler(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		h.ServeHTTP(w, r)
	})}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	if err := writeRunFile(dataDir, runFile{PID: os.Getpid(), Admin: ln.Addr().String()}); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			removeRunFile(dataDir)
			_ = srv.Close()
			_ = eng.Close(ctx)
			_ = j.Close(ctx)
		})
	}
	t.Cleanup(stop)
	return func() []string {
		stop()
		mu.Lock()
		defer mu.Unlock()
		return paths
	}
}

// checkIssueQuery runs the issue's query on an exported database, through
// database/sql and through the sqlite3 program when it is installed.
func checkIssueQuery(t *testing.T, path string, want map[string]int) {
	t.Helper()
	const query = `SELECT tool_name, COUNT(*) FROM traces WHERE status = 'failed' GROUP BY tool_name`
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	got := map[string]int{}
	var lines []string
	for rows.Next() {
		var tool string
		var n int
		if err := rows.Scan(&tool, &n); err != nil {
			t.Fatal(err)
		}
		got[tool] = n
		lines = append(lines, fmt.Sprintf("%s|%d", tool, n))
	}
	rows.Close()
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("%s (-want +got):\n%s", query, d)
	}
	sqlite3, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Log("sqlite3 is not installed: skipping the check with the sqlite3 program")
		return
	}
	out, err := exec.Command(sqlite3, path, query+";").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != strings.Join(lines, "\n") {
		t.Errorf("sqlite3 %s: %q, %v; want %q", path, out, err, lines)
	}
}

// TestPrintHistory renders a saga with a held call that was approved, a
// denied call and a compensation that failed before it succeeded.
func TestPrintHistory(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 8, 15, 0, 0, time.Local)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	h, err := traces.Fold("s-1", []saga.Event{
		{Kind: saga.EvOpened, Time: at(0), Scope: "agent"},
		{Kind: saga.EvNote, Time: at(1), Step: 1, Note: raw(`{"type":"decision","verdict":"require_approval","reasons":["charges over 1000 need a person"],"duration_us":52}`)},
		{Kind: saga.EvNote, Time: at(1), Step: 1, Note: raw(`{"type":"approval_requested","id":"ap-7","request":{"expires":"2026-11-27T08:30:00Z"}}`)},
		{Kind: saga.EvNote, Time: at(900), Step: 1, Note: raw(`{"type":"approval_decided","id":"ap-7","decision":{"approved":true,"by":"alice"}}`)},
		{Kind: saga.EvIntent, Time: at(901), Step: 1, Intent: &saga.Intent{Upstream: "payments", Tool: "charge_customer",
			Args: raw(`{"amount": 1840}`), Compensator: &saga.Compensator{Tool: "refund_customer"}}},
		{Kind: saga.EvOutcome, Time: at(905), Step: 1, Status: "succeeded", Result: raw(`{"structuredContent":{"charge_id":"ch_1"}}`)},
		{Kind: saga.EvNote, Time: at(910), Step: 2, Note: raw(`{"type":"decision","verdict":"deny","reasons":["no wire transfers"]}`)},
		{Kind: saga.EvIntent, Time: at(910), Step: 2, Intent: &saga.Intent{Upstream: "payments", Tool: "wire_transfer"}},
		{Kind: saga.EvOutcome, Time: at(910), Step: 2, Status: "denied", Error: "agenthelm denied this call: no wire transfers"},
		{Kind: saga.EvAborted, Time: at(911), Reason: "operator asked", By: "operator:bob"},
		{Kind: saga.EvCompStarted, Time: at(912), Step: 1, Attempt: 1},
		{Kind: saga.EvCompFinished, Time: at(915), Step: 1, Attempt: 1, Error: "payments down"},
		{Kind: saga.EvCompStarted, Time: at(1915), Step: 1, Attempt: 2},
		{Kind: saga.EvCompFinished, Time: at(1917), Step: 1, Attempt: 2, OK: true},
		{Kind: saga.EvStatus, Time: at(1918), Status: "compensated"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := printHistory(&b, h, "s-1", false); err != nil {
		t.Fatal(err)
	}
	want := `saga s-1  compensated
├─ scope agent · created 2026-11-27 08:15:00.000 · 2 steps · last change after 1.918s
├─ 08:15:00.901  step 1  payments/charge_customer  succeeded  4ms
│  ├─ policy  require_approval  charges over 1000 need a person  52µs
│  ├─ approval  requested ap-7, expires ` + clock(time.Date(2026, 11, 27, 8, 30, 0, 0, time.UTC)) + `
│  ├─ approval  approved by alice
│  ├─ args    {"amount":1840}
│  ├─ result  {"charge_id":"ch_1"}
│  └─ undo    payments/refund_customer  compensated  1.005s
│     ├─ attempt 1  08:15:00.912  failed  3ms  payments down
│     └─ attempt 2  08:15:01.915  ok  2ms
├─ 08:15:00.910  step 2  payments/wire_transfer  denied  0s
│  ├─ policy  deny  no wire transfers
│  ├─ error   agenthelm denied this call: no wire transfers
│  └─ undo    none needed (the call was not sent)
├─ 08:15:00.911  unwinding  operator asked (by operator:bob)
└─ 08:15:01.918  status compensated
`
	if d := cmp.Diff(want, b.String()); d != "" {
		t.Errorf("printHistory (-want +got):\n%s", d)
	}
	b.Reset()
	if err := printHistory(&b, h, "s-1#1", true); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"\x1b[33mrequire_approval\x1b[0m", "\x1b[35mdenied\x1b[0m", "\x1b[31mfailed\x1b[0m", "\x1b[32mapproved\x1b[0m", "succeeded\x1b[0m  4ms  ◀"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("printHistory with colour lacks %q:\n%s", w, b.String())
		}
	}
}
