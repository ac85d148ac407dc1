package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	badger "github.com/dgraph-io/badger/v4"
)

// Batch is what one Append writes atomically: events appended to one saga
// and, optionally, the saga's new head.
type Batch struct {
	// Saga is the saga id: any non-empty UTF-8 string of at most MaxIDLen
	// bytes ('/' and NUL included).
	Saga string
	// Events are appended in order. Each gets the next seq of the saga.
	Events []Event
	// Head, if set, replaces the saga's head and its index entries in the
	// same transaction as the events.
	Head *Head
}

// Event is one record of a saga's log. The journal does not interpret Kind
// or Body.
type Event struct {
	// Seq is assigned by Append: 1 for a saga's first event, then +1 per
	// event in commit order, with no gaps. Must be zero in a Batch.
	Seq uint64
	// Kind names the event for the saga engine (for example "step.intent").
	// Required.
	Kind string
	// Time is when the event happened. Zero means the time of the Append.
	// Stored in UTC with nanoseconds.
	Time time.Time
	// Body is the event's JSON, stored byte for byte. It may be empty.
	Body json.RawMessage
}

// Head is the small per-saga summary used for listings, recovery and retry
// scheduling. The saga engine owns its fields except the ones marked "set
// by the journal". Its strings must be valid UTF-8; times come back in UTC.
type Head struct {
	// Saga must be the Batch's saga, or empty (then it is filled in).
	Saga string
	// Status is the engine's name for the saga's state; required. Indexed.
	Status string
	// Scope is how the saga was attributed (agent, session, explicit id).
	Scope string
	// Created is when the saga started; zero keeps the stored head's value
	// (or uses the commit time for a new head). Indexed, and the order of
	// List and NonTerminal.
	Created time.Time
	// Updated is when the saga last changed; zero means the commit time.
	Updated time.Time
	// Tools are the tools the saga called; each distinct tool is indexed.
	Tools []string
	// Upstreams are the upstreams the saga's steps went to.
	Upstreams []string
	// Steps is the number of steps so far.
	Steps int
	// Terminal marks a saga that will take no more steps. Terminal sagas
	// expire after the retention period; the others never do.
	Terminal bool
	// NextAttempt is when a persisted retry is due (zero if none). Indexed
	// for Due.
	NextAttempt time.Time

	// LastSeq is set by the journal: the saga's last event seq when this
	// head was written.
	LastSeq uint64
	// Expires is set by the journal for terminal heads: when retention
	// removes the saga. It is kept while the saga stays terminal and
	// cleared if it becomes non-terminal again.
	Expires time.Time
}

// request is one queued Append (or a retention sweep step).
type request struct {
	ctx    context.Context
	saga   string
	events [][]byte
	head   *Head
	size   int64
	sweep  bool

	seqs []uint64
	more bool // sweep: expired sagas remain
	err  error
	done chan struct{}
}

func (r *request) finish(err error) {
	r.err = err
	close(r.done)
}

// Append writes b and returns the seqs assigned to its events (none for a
// batch with only a head). With
// Options.Sync it returns only once the batch is fsynced; concurrent
// Appends share one synced transaction (group commit), and Appends to one
// saga get increasing seqs in the order they commit.
//
// Errors: ErrInvalid and ErrTooLarge (nothing written; only this caller is
// affected); ErrClosed; ErrFailed (this or an earlier commit failed; nothing
// of this batch is acknowledged); ErrDiskFull (nothing written; retry once
// space is freed). If ctx ends before the commit is known, Append returns
// an error matching both ErrInDoubt and ctx.Err(): the batch may still be
// committed, so the caller must treat it as in doubt and re-read the saga.
// A ctx that is already done returns ctx.Err() and writes nothing.
func (j *Journal) Append(ctx context.Context, b Batch) ([]uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := j.Enqueue(ctx, b)
	if err != nil {
		return nil, err
	}
	return p.Wait(ctx)
}

// Pending is a batch queued by Enqueue.
type Pending struct{ r *request }

// Enqueue validates b and queues it for the committer without waiting:
// batches are committed in the order they were enqueued, so a caller that
// enqueues under its own lock and waits outside it keeps its order while
// sharing synced transactions with others. The batch is skipped, unwritten,
// if ctx ends before the committer reaches it; pass a context that does not
// end (context.WithoutCancel) when later batches depend on this one.
// Errors are those of Append that arise before the commit.
func (j *Journal) Enqueue(ctx context.Context, b Batch) (*Pending, error) {
	r, err := j.newRequest(ctx, b)
	if err != nil {
		return nil, err
	}
	if err := j.enqueue(r); err != nil {
		return nil, err
	}
	return &Pending{r}, nil
}

// Wait returns once the batch is committed (durably, with Options.Sync),
// with the seqs assigned to its events, or with the error that kept it
// from being committed. If ctx ends first, the error matches both
// ErrInDoubt and ctx.Err(): the batch may still be committed.
func (p *Pending) Wait(ctx context.Context) ([]uint64, error) {
	select {
	case <-p.r.done:
		return p.r.seqs, p.r.err
	case <-ctx.Done():
		select {
		case <-p.r.done:
			return p.r.seqs, p.r.err
		default:
		}
		return nil, fmt.Errorf("%w: %w", ErrInDoubt, ctx.Err())
	}
}

// newRequest validates b and encodes its events outside the committer.
func (j *Journal) newRequest(ctx context.Context, b Batch) (*request, error) {
	invalid := func(format string, args ...any) error {
		return &journalError{kind: ErrInvalid, msg: fmt.Sprintf("journal: invalid batch for saga %q: ", b.Saga) + fmt.Sprintf(format, args...)}
	}
	switch {
	case b.Saga == "":
		return nil, invalid("empty saga id")
	case len(b.Saga) > MaxIDLen:
		return nil, invalid("saga id is %d bytes, above %d", len(b.Saga), MaxIDLen)
	case !utf8.ValidString(b.Saga):
		return nil, invalid("saga id is not valid UTF-8")
	case len(b.Events) == 0 && b.Head == nil:
		return nil, invalid("no events and no head")
	}
	r := &request{ctx: ctx, saga: b.Saga, done: make(chan struct{})}
	now := j.now()
	for i, e := range b.Events {
		switch {
		case e.Kind == "":
			return nil, invalid("event %d has no kind", i)
		case e.Seq != 0:
			return nil, invalid("event %d has seq %d; Append assigns seqs", i, e.Seq)
		case !utf8.ValidString(e.Kind):
			return nil, invalid("event %d: kind is not valid UTF-8", i)
		}
		if e.Time.IsZero() {
			e.Time = now
		}
		val, err := encodeEvent(e)
		if err != nil {
			return nil, invalid("event %d: %v", i, err)
		}
		if len(val) > MaxRecordSize {
			return nil, &journalError{kind: ErrTooLarge, msg: fmt.Sprintf(
				"journal: event %d of saga %q is %s, above the %s record limit", i, b.Saga, mib(int64(len(val))), mib(MaxRecordSize))}
		}
		r.events = append(r.events, val)
		r.size += int64(len(val))
	}
	if b.Head != nil {
		h := *b.Head
		h.Tools = slices.Clone(h.Tools)
		h.Upstreams = slices.Clone(h.Upstreams)
		if h.Saga == "" {
			h.Saga = b.Saga
		}
		switch {
		case h.Saga != b.Saga:
			return nil, invalid("head is for saga %q", h.Saga)
		case h.Status == "":
			return nil, invalid("head has no status")
		case len(h.Status) > MaxIDLen:
			return nil, invalid("status is %d bytes, above %d", len(h.Status), MaxIDLen)
		}
		for _, t := range h.Tools {
			if len(t) > MaxIDLen {
				return nil, invalid("tool name is %d bytes, above %d", len(t), MaxIDLen)
			}
		}
		// JSON would silently replace invalid UTF-8, and the head's strings
		// must read back exactly as their index keys were written.
		for _, s := range slices.Concat([]string{h.Status, h.Scope}, h.Tools, h.Upstreams) {
			if !utf8.ValidString(s) {
				return nil, invalid("head field %q is not valid UTF-8", s)
			}
		}
		r.head = &h
		r.size += 1024 // head and index entries, roughly
	}
	return r, nil
}

func (j *Journal) enqueue(r *request) error {
	j.mu.Lock()
	switch {
	case j.closed:
		j.mu.Unlock()
		return ErrClosed
	case j.failed != nil:
		err := j.failed
		j.mu.Unlock()
		return err
	}
	j.queue = append(j.queue, r)
	j.mu.Unlock()
	j.signal()
	return nil
}

func (j *Journal) signal() {
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

// take waits for queued requests and returns up to MaxBatch of them; false
// once the journal is closed and the queue is drained.
func (j *Journal) take() ([]*request, bool) {
	j.mu.Lock()
	for len(j.queue) == 0 {
		if j.closed {
			j.mu.Unlock()
			return nil, false
		}
		j.mu.Unlock()
		<-j.wake
		j.mu.Lock()
	}
	n := min(len(j.queue), j.opts.MaxBatch)
	reqs := slices.Clone(j.queue[:n])
	j.queue = slices.Delete(j.queue, 0, n)
	j.mu.Unlock()
	return reqs, true
}

// runCommitter is the single writer: it takes waiting requests, writes as
// many as fit in one transaction, commits (synced) and acknowledges them.
func (j *Journal) runCommitter() {
	defer close(j.committerDone)
	for {
		reqs, ok := j.take()
		if !ok {
			return
		}
		j.process(reqs)
	}
}

func (j *Journal) process(reqs []*request) {
	if err := j.failure(); err != nil {
		for _, r := range reqs {
			r.finish(err)
		}
		return
	}
	var appends []*request
	var need int64
	for _, r := range reqs {
		switch {
		case r.sweep:
			// after the appends, below
		case r.ctx.Err() != nil:
			r.finish(r.ctx.Err()) // not written; the caller has gone
		default:
			appends = append(appends, r)
			need += r.size
		}
	}
	if len(appends) > 0 {
		if err := j.checkSpace(need); err != nil {
			for _, r := range appends {
				r.finish(err)
			}
		} else {
			j.commitGroup(appends)
		}
	}
	for _, r := range reqs {
		if r.sweep {
			r.more, r.err = j.sweepStep()
			close(r.done)
		}
	}
}

// sagaState is what the committer knows of a saga: the next seq and the
// stored head. Values are immutable once built.
type sagaState struct {
	next uint64
	head *Head
}

// maxCachedSagas bounds the committer's cache; beyond it the cache is
// dropped and states are reloaded from Badger on use.
const maxCachedSagas = 4096

// group is the state of one round of the committer: a read snapshot for
// loading saga states and the states changed by writes not yet merged
// into the cache.
type group struct {
	j       *Journal
	rtxn    *badger.Txn
	overlay map[string]*sagaState
	now     time.Time
}

func (g *group) close() {
	if g.rtxn != nil {
		g.rtxn.Discard()
	}
}

func (g *group) state(saga string) (*sagaState, error) {
	if s, ok := g.overlay[saga]; ok {
		return s, nil
	}
	if s, ok := g.j.sagas[saga]; ok {
		return s, nil
	}
	if g.rtxn == nil {
		g.rtxn = g.j.db.NewTransaction(false)
	}
	s := &sagaState{next: 1}
	h, err := getHead(g.rtxn, saga)
	switch {
	case err == nil:
		s.head = &h
	case !errors.Is(err, ErrNotFound):
		return nil, err
	}
	prefix := eventPrefix(saga)
	it := g.rtxn.NewIterator(badger.IteratorOptions{Prefix: prefix, Reverse: true})
	defer it.Close()
	// Reverse Seek lands on the largest key <= the bound: the last event.
	if it.Seek(prefixEnd(prefix)); it.Valid() {
		s.next = seqFromEventKey(it.Item().Key()) + 1
	}
	return s, nil
}

// write is one key to set (or delete) in a transaction.
type write struct {
	key, val []byte
	del      bool
}

type prepared struct {
	req    *request
	writes []write
	seqs   []uint64
	state  *sagaState
}

// prepare computes r's writes from the saga's current state without
// changing anything.
func (g *group) prepare(r *request) (*prepared, error) {
	st, err := g.state(r.saga)
	if err != nil {
		return nil, err
	}
	p := &prepared{req: r}
	next := st.next
	for _, val := range r.events {
		p.seqs = append(p.seqs, next)
		p.writes = append(p.writes, write{key: eventKey(r.saga, next), val: val})
		next++
	}
	head := st.head
	if r.head != nil {
		h := *r.head
		old := st.head
		if h.Created.IsZero() {
			h.Created = g.now
			if old != nil {
				h.Created = old.Created
			}
		}
		if h.Updated.IsZero() {
			h.Updated = g.now
		}
		h.LastSeq = next - 1
		h.Expires = time.Time{}
		if h.Terminal {
			h.Expires = g.now.Add(g.j.opts.Retention)
			if old != nil && old.Terminal && !old.Expires.IsZero() {
				h.Expires = old.Expires
			}
		}
		val, err := encodeHead(&h)
		if err != nil {
			return nil, &journalError{kind: ErrInvalid, msg: fmt.Sprintf("journal: invalid head for saga %q", r.saga), cause: err}
		}
		if len(val) > MaxRecordSize {
			return nil, &journalError{kind: ErrTooLarge, msg: fmt.Sprintf("journal: head of saga %q is %s, above the %s record limit",
				r.saga, mib(int64(len(val))), mib(MaxRecordSize))}
		}
		// Round-trip so the cached head equals what a reader decodes.
		h, _ = decodeHead(val)
		newKeys := indexKeys(&h)
		var oldKeys [][]byte
		if old != nil {
			oldKeys = indexKeys(old)
		}
		for _, k := range oldKeys {
			if !containsKey(newKeys, k) {
				p.writes = append(p.writes, write{key: k, del: true})
			}
		}
		for _, k := range newKeys {
			if !containsKey(oldKeys, k) {
				p.writes = append(p.writes, write{key: k, val: []byte{}})
			}
		}
		p.writes = append(p.writes, write{key: headKey(r.saga), val: val})
		head = &h
	}
	p.state = &sagaState{next: next, head: head}
	return p, nil
}

func containsKey(keys [][]byte, k []byte) bool {
	return slices.ContainsFunc(keys, func(x []byte) bool { return string(x) == string(k) })
}

func addWrites(txn *badger.Txn, ws []write) error {
	for _, w := range ws {
		var err error
		if w.del {
			err = txn.Delete(w.key)
		} else {
			err = txn.SetEntry(badger.NewEntry(w.key, w.val))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// commitGroup writes reqs in as few transactions as Badger's size limit
// allows, committing and acknowledging each. A request that does not fit
// even alone fails with ErrTooLarge; a failed commit fails its requests and
// every later one, and marks the journal failed.
func (j *Journal) commitGroup(reqs []*request) {
	g := &group{j: j, overlay: make(map[string]*sagaState), now: j.now()}
	defer g.close()

	txn := j.db.NewTransaction(true)
	defer func() { txn.Discard() }() // a no-op after Commit
	var pending []*prepared
	// rebuild replaces txn with one holding exactly pending's writes (they
	// fitted before, so they fit again).
	rebuild := func() error {
		txn.Discard()
		txn = j.db.NewTransaction(true)
		for _, p := range pending {
			if err := addWrites(txn, p.writes); err != nil {
				return err
			}
		}
		return nil
	}
	failFrom := func(i int, err error) {
		for _, p := range pending {
			p.req.finish(err)
		}
		for _, r := range reqs[i:] {
			r.finish(err)
		}
	}
	for i, r := range reqs {
		p, err := g.prepare(r)
		if err != nil {
			r.finish(err)
			continue
		}
		err = addWrites(txn, p.writes)
		if errors.Is(err, badger.ErrTxnTooBig) && len(pending) > 0 {
			// Commit what fits, then start a new transaction with r.
			if err := rebuild(); err != nil {
				failFrom(i, j.fail(err))
				return
			}
			cerr := j.commitTxn(txn, pending, g)
			pending = nil
			if cerr != nil {
				failFrom(i, cerr)
				return
			}
			txn = j.db.NewTransaction(true)
			err = addWrites(txn, p.writes)
		}
		if err != nil {
			if rerr := rebuild(); rerr != nil { // drop r's partial writes
				failFrom(i, j.fail(rerr))
				return
			}
			if errors.Is(err, badger.ErrTxnTooBig) {
				err = &journalError{kind: ErrTooLarge, msg: fmt.Sprintf(
					"journal: batch for saga %q (%d events, %d keys) does not fit in one transaction (limit %s, %d keys)",
					r.saga, len(r.events), len(p.writes), mib(j.db.MaxBatchSize()), j.db.MaxBatchCount())}
			} else {
				err = fmt.Errorf("journal: append to saga %q: %w", r.saga, err)
			}
			r.finish(err)
			continue
		}
		g.overlay[r.saga] = p.state
		pending = append(pending, p)
	}
	if len(pending) > 0 {
		_ = j.commitTxn(txn, pending, g)
	}
}

// commitTxn commits txn, which holds exactly the writes of pending, and
// acknowledges them with the outcome.
func (j *Journal) commitTxn(txn *badger.Txn, pending []*prepared, g *group) error {
	start := time.Now()
	err := j.commitFn(txn)
	d := time.Since(start)
	if err == nil {
		err = j.failure() // a failed value-log fsync Badger only logged
	}
	if err != nil {
		err = j.fail(err)
		for _, p := range pending {
			p.req.finish(err)
		}
		return err
	}
	// Everything in the overlay is now committed.
	if len(j.sagas)+len(g.overlay) > maxCachedSagas {
		clear(j.sagas)
	}
	for saga, s := range g.overlay {
		if s.head != nil && s.head.Terminal {
			delete(j.sagas, saga) // rarely written again; reload if it is
			continue
		}
		j.sagas[saga] = s
	}
	for _, p := range pending {
		p.req.seqs = p.seqs
		p.req.finish(nil)
	}
	if j.opts.OnCommit != nil {
		j.opts.OnCommit(len(pending), d)
	}
	return nil
}
