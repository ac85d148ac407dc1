package traces

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Export formats.
const (
	FormatCSV    = "csv"
	FormatJSONL  = "jsonl"
	FormatSQLite = "sqlite"
)

// Formats are the export formats, in the order help text lists them.
var Formats = []string{FormatCSV, FormatJSONL, FormatSQLite}

// FormatOf guesses the export format from a file name's extension:
// .csv, .jsonl or .ndjson, .db, .sqlite or .sqlite3. It returns "" for
// anything else.
func FormatOf(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		return FormatCSV
	case ".jsonl", ".ndjson":
		return FormatJSONL
	case ".db", ".sqlite", ".sqlite3":
		return FormatSQLite
	}
	return ""
}

// Columns are the fields of a record in CSV and SQLite, in order. JSON
// Lines uses the same names.
var Columns = []string{
	"id", "saga_id", "step", "kind", "upstream", "tool_name", "status", "outcome",
	"started", "finished", "duration_ms", "arguments", "result", "error",
	"decision", "approval", "approver", "compensation_tool", "compensation_status", "compensation_attempts", "saga_status", "idempotency_key",
}

// timeLayout is how CSV and SQLite write times: UTC, fixed width (so text
// order is time order), and readable by SQLite's date functions.
const timeLayout = "2006-01-02T15:04:05.000000Z"

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayout)
}

// values returns r's columns in Columns order; nil is SQL NULL (and an
// empty CSV field).
func (r Record) values() []any {
	return []any{
		r.ID, r.Saga, r.Step, r.Kind, r.Upstream, r.ToolName, r.Status, r.Outcome,
		nullString(formatTime(r.Started)), nullString(formatTime(r.Finished)), nullFloat(r.DurationMS),
		nullString(string(r.Arguments)), nullString(string(r.Result)), nullString(r.Error),
		nullString(r.Decision), nullString(r.Approval), nullString(r.Approver), nullString(r.CompTool), nullString(r.CompStatus), r.CompAttempts, r.SagaStatus, nullString(r.IdempotencyKey),
	}
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullFloat(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}

// WriteCSV writes a header line and one line per record (RFC 4180).
// Arguments and results are JSON text; times are UTC.
func WriteCSV(w io.Writer, recs []Record) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(Columns); err != nil {
		return err
	}
	row := make([]string, len(Columns))
	for _, r := range recs {
		for i, v := range r.values() {
			switch v := v.(type) {
			case nil:
				row[i] = ""
			case string:
				row[i] = v
			case int:
				row[i] = strconv.Itoa(v)
			case float64:
				row[i] = strconv.FormatFloat(v, 'f', -1, 64)
			default:
				row[i] = fmt.Sprint(v)
			}
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteJSONL writes one JSON object per record per line.
func WriteJSONL(w io.Writer, recs []Record) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, r := range recs {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// ErrExists is returned by WriteFile for an existing file when overwrite
// is false.
var ErrExists = errors.New("file exists")

// WriteFile exports recs to path in format. The file appears complete or
// not at all: it is written under a temporary name in the same directory
// and then moved into place. An existing file is replaced only when
// overwrite is set; otherwise the error wraps ErrExists (also when the file
// appears while the export runs).
func WriteFile(ctx context.Context, path, format string, recs []Record, overwrite bool) error {
	var write func(f *os.File) error
	switch format {
	case FormatCSV:
		write = func(f *os.File) error { return WriteCSV(f, recs) }
	case FormatJSONL:
		write = func(f *os.File) error { return WriteJSONL(f, recs) }
	case FormatSQLite:
		// SQLite writes the database itself, into the empty file.
		write = func(f *os.File) error { return WriteSQLite(ctx, f.Name(), recs) }
	default:
		return fmt.Errorf("format %q: want one of %s", format, strings.Join(Formats, ", "))
	}
	if !overwrite {
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("%s: %w (pass --force to overwrite it)", path, ErrExists)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // gone after a successful move
	err = write(tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err != nil {
		return fmt.Errorf("export %s: %w", path, err)
	}
	if overwrite {
		err = os.Rename(tmp.Name(), path)
	} else {
		// A hard link fails if path appeared meanwhile: never clobber.
		err = os.Link(tmp.Name(), path)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w (pass --force to overwrite it)", path, ErrExists)
		}
	}
	if err != nil {
		return fmt.Errorf("export %s: %w", path, err)
	}
	return nil
}
