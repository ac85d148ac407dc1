package journal

import (
	"context"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Retention. When a head becomes terminal the committer records when the
// saga expires (Head.Expires, now + Retention) in the head and in the
// v1/i/expire index, in the same transaction. A sweep, run by the committer
// so that it never races an Append, deletes every expired saga: its events
// first, then, in the last transaction, its head and index keys, so that an
// interrupted sweep is simply resumed by the next one. A saga that becomes
// non-terminal again (an operator rollback of a committed saga) loses its
// expire key and is kept.
//
// Deleting explicitly rather than rewriting every key with a Badger TTL
// keeps the decision in one index key: nothing has to be rewritten when a
// terminal saga is reopened, large event bodies are not copied a second
// time, and no saga can be left half expired.

const (
	// sweepSagas is the most expired sagas one sweep step looks at.
	sweepSagas = 64
	// sweepDeletes is the most keys one sweep step deletes, well below
	// Badger's transaction limit (about 26k keys with these options).
	sweepDeletes = 4096
)

// sweepStep deletes expired sagas in one transaction. It runs on the
// committer goroutine. more reports that expired sagas remain.
func (j *Journal) sweepStep() (more bool, err error) {
	now := timeKey(j.now())
	rtxn := j.db.NewTransaction(false)
	defer rtxn.Discard()

	type expired struct {
		saga string
		key  []byte
	}
	var todo []expired
	it := rtxn.NewIterator(keysOnly(prefixExpire, false))
	for it.Seek(prefixExpire); it.Valid(); it.Next() {
		key := it.Item().KeyCopy(nil)
		saga, t, ok := sagaFromIndexKey(key, prefixExpire, false)
		if !ok {
			j.log.Warn("journal sweep: skipping malformed expire key", "key", fmt.Sprintf("%q", key))
			continue
		}
		if t > now {
			break
		}
		if len(todo) == sweepSagas {
			more = true
			break
		}
		todo = append(todo, expired{saga, key})
	}
	it.Close()
	if len(todo) == 0 {
		return false, nil
	}

	wtxn := j.db.NewTransaction(true)
	defer wtxn.Discard()
	deletes, removed := 0, 0
	del := func(key []byte) error {
		deletes++
		return wtxn.Delete(key)
	}
	for _, e := range todo {
		eit := rtxn.NewIterator(keysOnly(eventPrefix(e.saga), false))
		complete := true
		for eit.Rewind(); eit.Valid(); eit.Next() {
			if deletes >= sweepDeletes {
				complete = false
				break
			}
			if err := del(eit.Item().KeyCopy(nil)); err != nil {
				eit.Close()
				return false, fmt.Errorf("journal sweep: %w", err)
			}
		}
		eit.Close()
		if !complete {
			more = true
			break
		}
		keys := [][]byte{e.key, headKey(e.saga)}
		if h, err := getHead(rtxn, e.saga); err == nil {
			keys = append(keys, indexKeys(&h)...)
		} else if !errors.Is(err, ErrNotFound) {
			j.log.Warn("journal sweep: removing a saga whose head is unreadable; some of its index keys may remain",
				"saga", e.saga, "err", err)
		}
		for _, k := range distinctKeys(keys) {
			if err := del(k); err != nil {
				return false, fmt.Errorf("journal sweep: %w", err)
			}
		}
		delete(j.sagas, e.saga)
		removed++
		if deletes >= sweepDeletes {
			more = more || removed < len(todo)
			break
		}
	}
	if deletes == 0 {
		return more, nil
	}
	if err := j.commitFn(wtxn); err != nil {
		return false, j.fail(err)
	}
	if removed > 0 {
		j.log.Debug("journal removed expired sagas", "count", removed)
	}
	return more, nil
}

func distinctKeys(keys [][]byte) [][]byte {
	seen := make(map[string]bool, len(keys))
	out := keys[:0]
	for _, k := range keys {
		if !seen[string(k)] {
			seen[string(k)] = true
			out = append(out, k)
		}
	}
	return out
}

// sweep runs sweep steps through the committer until no expired saga is
// left.
func (j *Journal) sweep(ctx context.Context) error {
	for {
		r := &request{ctx: ctx, sweep: true, done: make(chan struct{})}
		if err := j.enqueue(r); err != nil {
			return err
		}
		select {
		case <-r.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if r.err != nil || !r.more {
			return r.err
		}
	}
}

// GC deletes the sagas whose retention has passed and runs value-log GC
// passes until Badger finds nothing worth rewriting. Open's maintenance
// goroutine does the same periodically (sweeps every minute, value-log GC
// every 10 minutes); GC is for operators and tests.
//
// Errors: ErrClosed; ErrFailed; ctx.Err(); a Badger GC error.
func (j *Journal) GC(ctx context.Context) error {
	j.dbMu.RLock()
	defer j.dbMu.RUnlock()
	if j.dbClosed {
		return ErrClosed
	}
	if err := j.sweep(ctx); err != nil {
		return err
	}
	return j.valueLogGC(ctx)
}

func (j *Journal) valueLogGC(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := j.db.RunValueLogGC(gcDiscardRatio)
		switch {
		case err == nil:
			continue // a file was rewritten; there may be more
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			return nil
		default:
			return fmt.Errorf("journal: value log gc: %w", err)
		}
	}
}

// maintain runs retention sweeps and value-log GC until ctx ends.
func (j *Journal) maintain(ctx context.Context) {
	defer close(j.maintDone)
	sweepTicker := time.NewTicker(j.opts.sweepInterval)
	defer sweepTicker.Stop()
	gcTicker := time.NewTicker(j.opts.gcInterval)
	defer gcTicker.Stop()

	runSweep := func() {
		// A failed journal has already said so, once.
		if err := j.sweep(ctx); err != nil && ctx.Err() == nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrFailed) {
			j.log.Warn("journal retention sweep", "err", err)
		}
	}
	runSweep()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweepTicker.C:
			runSweep()
		case <-gcTicker.C:
			if err := j.valueLogGC(ctx); err != nil && ctx.Err() == nil {
				j.log.Warn("journal value log gc", "err", err)
			}
		}
	}
}
