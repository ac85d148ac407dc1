package traces

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	_ "modernc.org/sqlite" // database/sql driver "sqlite", pure Go
)

// sqliteSchema is the export's schema. The traces table has one row per
// record, its columns named as in Columns; arguments and result are JSON
// text (SQLite's json_extract reads them), times are UTC text that
// SQLite's date functions read, duration_ms is REAL. For example:
//
//	SELECT tool_name, COUNT(*) FROM traces WHERE status = 'failed' GROUP BY tool_name;
const sqliteSchema = `
CREATE TABLE traces (
	id                    TEXT PRIMARY KEY,
	saga_id               TEXT NOT NULL,
	step                  INTEGER NOT NULL,
	kind                  TEXT NOT NULL CHECK (kind IN ('call', 'compensation')),
	upstream              TEXT NOT NULL,
	tool_name             TEXT NOT NULL,
	status                TEXT NOT NULL,
	outcome               TEXT NOT NULL,
	started               TEXT,
	finished              TEXT,
	duration_ms           REAL,
	arguments             TEXT,
	result                TEXT,
	error                 TEXT,
	decision              TEXT,
	approval              TEXT,
	approver              TEXT,
	compensation_tool     TEXT,
	compensation_status   TEXT,
	compensation_attempts INTEGER NOT NULL DEFAULT 0,
	saga_status           TEXT NOT NULL,
	idempotency_key       TEXT
);
CREATE INDEX traces_status_tool ON traces (status, tool_name);
CREATE INDEX traces_saga ON traces (saga_id, step);
CREATE INDEX traces_started ON traces (started);
`

// WriteSQLite creates a SQLite database at path (which must not hold a
// database yet: an empty or missing file) with the traces table, and
// inserts recs in one transaction.
func WriteSQLite(ctx context.Context, path string, recs []Record) error {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	if _, err := tx.ExecContext(ctx, sqliteSchema); err != nil {
		return fmt.Errorf("sqlite: create schema: %w", err)
	}
	insert := "INSERT INTO traces (" + strings.Join(Columns, ", ") + ") VALUES (" +
		strings.TrimSuffix(strings.Repeat("?, ", len(Columns)), ", ") + ")"
	stmt, err := tx.PrepareContext(ctx, insert)
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	defer stmt.Close()
	for _, r := range recs {
		if _, err := stmt.ExecContext(ctx, r.values()...); err != nil {
			return fmt.Errorf("sqlite: insert %s: %w", r.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	return db.Close()
}
