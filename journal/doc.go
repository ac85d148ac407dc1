// Package journal is agenthelm's durable write-ahead journal: an
// append-only event log per saga plus a small per-saga head for listings,
// recovery and retry scheduling, stored in Badger.
//
// It owns durability (group commit: concurrent Appends share one fsynced
// transaction), per-saga sequence numbers, indexes, retention and the
// record format. Event bodies are opaque JSON: the saga engine folds them
// into state. It must not import the saga engine, policy or proxy packages.
//
//	j, err := journal.Open(ctx, journal.Options{Dir: dir, Sync: true, Logger: log})
//	defer j.Close(ctx)
//	seqs, err := j.Append(ctx, journal.Batch{Saga: id, Events: evs, Head: &head}) // durable on return
//	events, err := j.Events(ctx, id)
//	open, err := j.NonTerminal(ctx) // at start-up, before accepting traffic
//
// Keys (format 1, record.go has the details): v1/meta/format; events at
// v1/e/{saga}{seq}; heads at v1/h/{saga}; value-less index keys under
// v1/i/{time,status,tool,live,due,expire}/. Values are versioned JSON
// envelopes ({"v":1,...}); testdata/ holds frozen v1 records that every
// later build must still decode.
//
// Memory: Badger is tuned for a sidecar. Memtables are 16 MiB, each taking
// about 21 MiB of heap with its largest-transaction headroom; one is active
// and up to NumMemtables (2) wait for a flush, so steady state is 21-42 MiB
// and a write burst the disk cannot absorb peaks at about 85 MiB (four
// memtables) before writes stall. There is no block cache (compression is
// off), table indexes and bloom filters share an 8 MiB cache, and the
// committer caches the state of at most 4096 sagas. Value-log and table
// files are memory-mapped: page cache the kernel can reclaim, not heap.
package journal
