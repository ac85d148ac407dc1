package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Filter selects sagas for List. Zero fields do not filter.
type Filter struct {
	// Status keeps sagas whose head has this status.
	Status string
	// Tool keeps sagas whose head lists this tool.
	Tool string
	// Since and Until keep sagas created in [Since, Until].
	Since, Until time.Time
	// Limit is the most heads returned; 0 means all.
	Limit int
}

// ctxCheckEvery is how many keys an iteration reads between ctx checks.
const ctxCheckEvery = 256

// view runs fn in a read transaction unless the journal is closed.
func (j *Journal) view(ctx context.Context, fn func(*badger.Txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	j.dbMu.RLock()
	defer j.dbMu.RUnlock()
	if j.dbClosed {
		return ErrClosed
	}
	return j.db.View(fn)
}

// Events returns every event of saga in seq order.
//
// Errors: ErrNotFound if the saga has neither events nor a head; ErrCorrupt
// or ErrFormat (wrapped with the saga and seq) for an undecodable record;
// ErrClosed; ctx.Err().
func (j *Journal) Events(ctx context.Context, saga string) ([]Event, error) {
	var events []Event
	err := j.view(ctx, func(txn *badger.Txn) error {
		prefix := eventPrefix(saga)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 16})
		defer it.Close()
		for it.Seek(prefix); it.Valid(); it.Next() {
			if len(events)%ctxCheckEvery == ctxCheckEvery-1 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			item := it.Item()
			seq := seqFromEventKey(item.Key())
			err := item.Value(func(val []byte) error {
				e, err := decodeEvent(seq, val)
				if err != nil {
					return err
				}
				events = append(events, e)
				return nil
			})
			if err != nil {
				return recordError(fmt.Sprintf("event %d of saga %q", seq, saga), err)
			}
		}
		if len(events) == 0 {
			if _, err := txn.Get(headKey(saga)); err != nil {
				return notFound(saga, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return events, nil
}

// Head returns the head of saga.
//
// Errors: ErrNotFound; ErrCorrupt or ErrFormat; ErrClosed; ctx.Err().
func (j *Journal) Head(ctx context.Context, saga string) (Head, error) {
	var h Head
	err := j.view(ctx, func(txn *badger.Txn) error {
		var err error
		h, err = getHead(txn, saga)
		return err
	})
	return h, err
}

// List returns the heads that match f, newest Created first. It walks one
// index (status, else tool, else time) without reading values and reads
// only the head of each saga it returns, never events.
//
// Errors: ErrCorrupt or ErrFormat; ErrClosed; ctx.Err().
func (j *Journal) List(ctx context.Context, f Filter) ([]Head, error) {
	var base []byte
	switch {
	case f.Status != "":
		base = appendString(bytes.Clone(prefixStatus), f.Status)
	case f.Tool != "":
		base = appendString(bytes.Clone(prefixTool), f.Tool)
	default:
		base = bytes.Clone(prefixTime)
	}
	// Reverse Seek lands on the largest key <= seek. No stored key equals
	// seek itself (an index key always ends with a saga id), so the first
	// key seen is the newest at or before Until.
	seek := prefixEnd(base)
	if !f.Until.IsZero() && timeKey(f.Until) < timeKey(maxIndexedTime) {
		seek = appendUint64(bytes.Clone(base), timeKey(f.Until)+1)
	}
	since := timeKey(f.Since)

	var heads []Head
	err := j.view(ctx, func(txn *badger.Txn) error {
		it := txn.NewIterator(keysOnly(base, true))
		defer it.Close()
		n := 0
		for it.Seek(seek); it.Valid(); it.Next() {
			if n++; n%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			saga, created, ok := sagaFromIndexKey(it.Item().Key(), base, false)
			if !ok {
				return corruptKey(it.Item().Key())
			}
			if created < since {
				break
			}
			h, err := getHead(txn, saga)
			if err != nil {
				return err
			}
			if f.Tool != "" && !slices.Contains(h.Tools, f.Tool) {
				continue
			}
			heads = append(heads, h)
			if f.Limit > 0 && len(heads) >= f.Limit {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return heads, nil
}

// NonTerminal returns the head of every saga that is not terminal, oldest
// Created first: what recovery must resume at start-up.
//
// Errors: as List.
func (j *Journal) NonTerminal(ctx context.Context) ([]Head, error) {
	return j.scan(ctx, prefixLive, time.Time{})
}

// Due returns the heads whose NextAttempt is at or before now, earliest
// first: the persisted retry schedule.
//
// Errors: as List.
func (j *Journal) Due(ctx context.Context, now time.Time) ([]Head, error) {
	if now.IsZero() {
		return nil, nil
	}
	return j.scan(ctx, prefixDue, now)
}

// scan walks an index forward, up to and including time until (zero = no
// bound), and returns the heads.
func (j *Journal) scan(ctx context.Context, prefix []byte, until time.Time) ([]Head, error) {
	var heads []Head
	err := j.view(ctx, func(txn *badger.Txn) error {
		it := txn.NewIterator(keysOnly(prefix, false))
		defer it.Close()
		n := 0
		for it.Seek(prefix); it.Valid(); it.Next() {
			if n++; n%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			saga, t, ok := sagaFromIndexKey(it.Item().Key(), prefix, false)
			if !ok {
				return corruptKey(it.Item().Key())
			}
			if !until.IsZero() && t > timeKey(until) {
				break
			}
			h, err := getHead(txn, saga)
			if err != nil {
				return err
			}
			heads = append(heads, h)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return heads, nil
}

// keysOnly are the iterator options for index walks: values (which are
// empty for index keys) are never fetched.
func keysOnly(prefix []byte, reverse bool) badger.IteratorOptions {
	return badger.IteratorOptions{Prefix: prefix, Reverse: reverse, PrefetchValues: false}
}

func getHead(txn *badger.Txn, saga string) (Head, error) {
	item, err := txn.Get(headKey(saga))
	if err != nil {
		return Head{}, notFound(saga, err)
	}
	var h Head
	err = item.Value(func(val []byte) error {
		h, err = decodeHead(val)
		return err
	})
	if err != nil {
		return Head{}, recordError(fmt.Sprintf("head of saga %q", saga), err)
	}
	return h, nil
}

func notFound(saga string, err error) error {
	if errors.Is(err, badger.ErrKeyNotFound) {
		return fmt.Errorf("%w: %q", ErrNotFound, saga)
	}
	return fmt.Errorf("journal: read saga %q: %w", saga, err)
}

func recordError(what string, err error) error {
	if errors.Is(err, ErrFormat) {
		return fmt.Errorf("journal: %s: %w", what, err)
	}
	return &journalError{kind: ErrCorrupt, msg: "journal: " + what + " is corrupt", cause: err}
}

func corruptKey(key []byte) error {
	return &journalError{kind: ErrCorrupt, msg: fmt.Sprintf("journal: malformed index key %q", key)}
}
