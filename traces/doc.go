// Package traces is agenthelm's trace model for people and tools outside
// the sidecar: one Record per tool call (a saga step) and one per
// compensation, flattened from the journal's sagas, with filters and
// writers for CSV, JSON Lines and SQLite. The CLI (`agenthelm traces`)
// and the admin API (GET /v1/traces) both build on it, so a row looks the
// same whichever way it was read.
//
// It reads sagas (package saga) and the journal's record types; it must
// not import the engine, the proxy or the admin API.
//
//	h, err := traces.Load(ctx, j, sagaID)              // one saga, with its events
//	recs, err := traces.Collect(ctx, traces.FromJournal(j), traces.Filter{Status: traces.StatusFailed})
//	err = traces.WriteFile(ctx, "traces.db", traces.FormatSQLite, recs, false)
package traces
