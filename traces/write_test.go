package traces

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func storyRecords(t *testing.T) []Record {
	t.Helper()
	h, err := Fold("s1", refundStory(time.Date(2026, 11, 27, 8, 15, 0, 0, time.UTC)))
	if err != nil {
		t.Fatal(err)
	}
	return h.Records
}

func TestWriteCSV(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteCSV(&buf, storyRecords(t)); err != nil {
		t.Fatal(err)
	}
	lines, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatalf("CSV does not parse: %v", err)
	}
	if d := cmp.Diff(Columns, lines[0]); d != "" {
		t.Errorf("header (-want +got):\n%s", d)
	}
	if len(lines) != 6 {
		t.Fatalf("%d lines, want header + 5", len(lines))
	}
	first := map[string]string{}
	for i, c := range Columns {
		first[c] = lines[1][i]
	}
	want := map[string]string{
		"id": "s1#1", "saga_id": "s1", "step": "1", "kind": "call", "upstream": "hotel", "tool_name": "book_hotel",
		"status": "success", "outcome": "succeeded", "started": "2026-11-27T08:15:00.001000Z", "finished": "2026-11-27T08:15:00.004000Z",
		"duration_ms": "3", "arguments": `{"guest":"Ada","nights":2}`, "result": `{"structuredContent":{"booking_id":"bk_0001"}}`,
		"error": "", "decision": "allow", "approval": "", "approver": "", "compensation_tool": "cancel_hotel_booking", "compensation_status": "compensated", "compensation_attempts": "1",
		"saga_status": "compensated", "idempotency_key": "ah-1",
	}
	if d := cmp.Diff(want, first); d != "" {
		t.Errorf("first row (-want +got):\n%s", d)
	}
}

func TestWriteJSONL(t *testing.T) {
	recs := storyRecords(t)
	var buf bytes.Buffer
	if err := WriteJSONL(&buf, recs); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	var got []Record
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got = append(got, r)
	}
	if d := cmp.Diff(recs, got); d != "" {
		t.Errorf("JSONL round trip (-want +got):\n%s", d)
	}
	if !strings.Contains(text, `"tool_name":"book_hotel"`) {
		t.Errorf("JSONL lacks the tool_name field:\n%s", text)
	}
}

// issueQuery is the query the trace export must answer (the issue's
// example).
const issueQuery = `SELECT tool_name, COUNT(*) FROM traces WHERE status = 'failed' GROUP BY tool_name`

func TestWriteSQLite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "traces.db")
	recs := storyRecords(t)
	recs = append(recs, Record{ID: "s2#1", Saga: "s2", Step: 1, Kind: KindCall, Upstream: "email", ToolName: "send_email",
		Status: StatusFailed, Outcome: "timeout", SagaStatus: "compensated"})
	if err := WriteFile(ctx, path, FormatSQLite, recs, false); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got := map[string]int{}
	rows, err := db.QueryContext(ctx, issueQuery)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var tool string
		var n int
		if err := rows.Scan(&tool, &n); err != nil {
			t.Fatal(err)
		}
		got[tool] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string]int{"send_email": 2}, got); d != "" {
		t.Errorf("%s (-want +got):\n%s", issueQuery, d)
	}
	// JSON columns and times are usable from SQL.
	var guest, day string
	var dur float64
	err = db.QueryRowContext(ctx, `SELECT json_extract(arguments, '$.guest'), date(started), duration_ms FROM traces WHERE id = 's1#1'`).Scan(&guest, &day, &dur)
	if err != nil || guest != "Ada" || day != "2026-11-27" || dur != 3 {
		t.Errorf("json_extract/date/duration_ms = %q %q %v, %v", guest, day, dur, err)
	}
	var nulls int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM traces WHERE started IS NULL AND duration_ms IS NULL`).Scan(&nulls); err != nil || nulls != 1 {
		t.Errorf("rows with NULL started and duration = %d, %v; want 1 (s2#1)", nulls, err)
	}

	sqlite3, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Log("sqlite3 is not installed: skipping the check with the sqlite3 program")
		return
	}
	out, err := exec.Command(sqlite3, path, issueQuery+";").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "send_email|2" {
		t.Errorf("sqlite3 %s = %q, %v; want send_email|2", issueQuery, out, err)
	}
}

func TestWriteFileNoClobber(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	recs := storyRecords(t)
	for _, format := range Formats {
		path := filepath.Join(dir, "out."+format)
		if err := os.WriteFile(path, []byte("keep me"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := WriteFile(ctx, path, format, recs, false); !errors.Is(err, ErrExists) {
			t.Errorf("WriteFile(%s, existing file) = %v, want ErrExists", format, err)
		}
		if b, _ := os.ReadFile(path); string(b) != "keep me" {
			t.Errorf("WriteFile(%s) without overwrite changed the file: %q", format, b)
		}
		if err := WriteFile(ctx, path, format, recs, true); err != nil {
			t.Errorf("WriteFile(%s, overwrite) = %v", format, err)
		}
		if b, _ := os.ReadFile(path); string(b) == "keep me" || len(b) == 0 {
			t.Errorf("WriteFile(%s, overwrite) left %q", format, b)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("WriteFile(%s) mode = %v, %v", format, fi.Mode(), err)
		}
	}
	if err := WriteFile(ctx, filepath.Join(dir, "x.xml"), "xml", recs, false); err == nil || !strings.Contains(err.Error(), "csv, jsonl, sqlite") {
		t.Errorf("WriteFile(xml) = %v, want an error naming the formats", err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".*tmp-*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left behind: %q", leftovers)
	}
}

func TestFormatOf(t *testing.T) {
	for in, want := range map[string]string{"a.csv": "csv", "a.JSONL": "jsonl", "a.ndjson": "jsonl", "t.db": "sqlite",
		"t.sqlite": "sqlite", "t.sqlite3": "sqlite", "t.json": "", "t": ""} {
		if got := FormatOf(in); got != want {
			t.Errorf("FormatOf(%q) = %q, want %q", in, got, want)
		}
	}
}
