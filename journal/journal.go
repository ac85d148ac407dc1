package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Defaults and limits.
const (
	// DefaultRetention is used when Options.Retention is zero.
	DefaultRetention = 720 * time.Hour
	// MinRetention is the shortest retention the journal accepts
	// (CORRECTNESS rule 8); shorter values are raised to it.
	MinRetention = 24 * time.Hour
	// DefaultMaxBatch is used when Options.MaxBatch is zero.
	DefaultMaxBatch = 256
	// DefaultMinFreeBytes is used when Options.MinFreeBytes is zero: room
	// for the memtable write-ahead logs, a memtable flush and compaction.
	DefaultMinFreeBytes = 4 * memTableSize
	// MaxRecordSize is the largest encoded event or head the journal
	// stores. Larger ones fail with ErrTooLarge.
	MaxRecordSize = 16 << 20
	// MaxIDLen is the longest saga id, status or tool name, in bytes.
	MaxIDLen = 1024
)

// Sidecar-sized Badger settings (see the package doc for the memory bound).
const (
	memTableSize     = 16 << 20
	numMemtables     = 2
	valueLogFileSize = 64 << 20
	valueThreshold   = 64 << 10
	indexCacheSize   = 8 << 20
	numCompactors    = 2

	gcDiscardRatio       = 0.5
	defaultGCInterval    = 10 * time.Minute
	defaultSweepInterval = time.Minute
)

// Options configure Open. The zero value of every field but Dir is usable.
type Options struct {
	// Dir is the journal directory. It is created if missing. An existing
	// directory must be empty or hold a journal.
	Dir string

	// Sync makes every commit fsync before Append returns (journal.sync:
	// always). Without it an acknowledged record survives a crash of the
	// process but not of the machine; Open logs a warning.
	Sync bool

	// Retention is how long a terminal saga is kept after it became
	// terminal. Zero means DefaultRetention; values below MinRetention are
	// raised to MinRetention.
	Retention time.Duration

	// MaxBatch is the most Append calls grouped into one synced transaction.
	// Zero means DefaultMaxBatch. A group is also split wherever Badger's
	// transaction size limit requires.
	MaxBatch int

	// MinFreeBytes is the free space the journal keeps on its filesystem:
	// a group of Appends that would leave less fails with ErrDiskFull
	// instead of being written. Badger maps its logs into memory, and a
	// write into a full disk kills the process with SIGBUS rather than
	// returning ENOSPC; the reserve keeps it from getting there. Zero means
	// DefaultMinFreeBytes; a negative value turns the check off.
	MinFreeBytes int64

	// Logger receives the journal's warnings and Badger's warnings and
	// errors. Nil discards them.
	Logger *slog.Logger

	// OnCommit, if set, is called by the committer after every successful
	// transaction with the number of Append calls it acknowledged and how
	// long the commit (including fsync) took. It must return quickly and
	// must not call the Journal.
	OnCommit func(records int, d time.Duration)

	// Test hooks.
	noRetentionFloor bool                    // accept Retention below MinRetention
	now              func() time.Time        // clock; nil = time.Now
	commit           func(*badger.Txn) error // nil = (*badger.Txn).Commit
	sweepInterval    time.Duration           // retention sweep period
	gcInterval       time.Duration           // value-log GC period
}

// Journal is an open journal directory. Its methods are safe for concurrent
// use.
type Journal struct {
	dir      string
	db       *badger.DB
	log      *slog.Logger
	opts     Options
	minFree  int64
	now      func() time.Time
	commitFn func(*badger.Txn) error

	mu     sync.Mutex
	queue  []*request
	closed bool
	failed error // sticky write failure
	wake   chan struct{}

	space atomic.Pointer[error] // last free-space check, nil if fine

	// sagas caches per-saga state for the committer; only it touches it.
	sagas map[string]*sagaState

	committerDone chan struct{}
	maintCancel   context.CancelFunc
	maintDone     chan struct{}

	dbMu     sync.RWMutex // readers vs. the final db.Close
	dbClosed bool

	closeOnce sync.Once
	closeErr  error
}

// Open opens or creates the journal in opts.Dir and starts its committer and
// maintenance goroutines, which Close stops.
//
// Errors: ErrLocked when another process (or Journal) has the directory
// open; ErrNotJournal when the directory holds anything else (it is left
// untouched); ErrFormat when it was written by a newer agenthelm;
// ErrCorrupt when Badger reports a damaged directory.
func Open(ctx context.Context, opts Options) (*Journal, error) {
	if opts.Dir == "" {
		return nil, errors.New("open journal: Options.Dir is empty")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch {
	case opts.Retention == 0:
		opts.Retention = DefaultRetention
	case opts.Retention < MinRetention && !opts.noRetentionFloor:
		log.Warn("journal retention raised to the minimum", "retention", opts.Retention, "minimum", MinRetention)
		opts.Retention = MinRetention
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.sweepInterval <= 0 {
		opts.sweepInterval = defaultSweepInterval
	}
	if opts.gcInterval <= 0 {
		opts.gcInterval = defaultGCInterval
	}
	j := &Journal{
		dir:           opts.Dir,
		log:           log,
		opts:          opts,
		minFree:       opts.MinFreeBytes,
		now:           opts.now,
		commitFn:      opts.commit,
		wake:          make(chan struct{}, 1),
		sagas:         make(map[string]*sagaState),
		committerDone: make(chan struct{}),
		maintDone:     make(chan struct{}),
	}
	if j.minFree == 0 {
		j.minFree = DefaultMinFreeBytes
	}
	if j.now == nil {
		j.now = time.Now
	}
	if j.commitFn == nil {
		j.commitFn = (*badger.Txn).Commit
	}

	if err := checkDir(opts.Dir); err != nil {
		return nil, err
	}
	db, err := badger.Open(badgerOptions(opts.Dir, opts.Sync, &badgerLogger{log: log, j: j}))
	if err != nil {
		return nil, openError(opts.Dir, err)
	}
	j.db = db
	if err := j.checkFormat(); err != nil {
		_ = db.Close()
		return nil, err
	}
	if !opts.Sync {
		log.Warn("journal sync is off: acknowledged records survive a crash of agenthelm but not of the machine or a power loss; use journal.sync: always in production",
			"dir", opts.Dir)
	}

	go j.runCommitter()
	mctx, cancel := context.WithCancel(context.Background())
	j.maintCancel = cancel
	go j.maintain(mctx)
	return j, nil
}

// badgerOptions are the sidecar-sized options documented in doc.go.
func badgerOptions(dir string, sync bool, logger badger.Logger) badger.Options {
	return badger.DefaultOptions(dir).
		WithSyncWrites(sync).
		WithMemTableSize(memTableSize).
		WithNumMemtables(numMemtables).
		WithValueLogFileSize(valueLogFileSize).
		WithValueThreshold(valueThreshold).
		WithCompression(options.None).
		WithBlockCacheSize(0).
		WithIndexCacheSize(indexCacheSize).
		WithNumCompactors(numCompactors).
		WithMetricsEnabled(false).
		WithDetectConflicts(false). // the committer is the only writer
		WithVerifyValueChecksum(true).
		WithChecksumVerificationMode(options.OnBlockRead).
		WithLogger(logger)
}

// checkDir refuses a directory that exists, has files, and has no Badger
// MANIFEST: Badger would otherwise adopt it, and it deletes table files its
// manifest does not list.
func checkDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("open journal: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("open journal: %w", err)
	}
	var foreign []string
	for _, e := range entries {
		switch e.Name() {
		case "MANIFEST":
			return nil
		case "LOCK", "lost+found":
		default:
			foreign = append(foreign, e.Name())
		}
	}
	if len(foreign) == 0 {
		return nil
	}
	slices.Sort(foreign)
	more := ""
	if len(foreign) > 3 {
		more = fmt.Sprintf(" and %d more", len(foreign)-3)
		foreign = foreign[:3]
	}
	return &journalError{kind: ErrNotJournal, msg: fmt.Sprintf(
		"journal: directory %s is not empty and holds no journal (found %s%s, no MANIFEST); refusing to use it, nothing was changed",
		dir, strings.Join(foreign, ", "), more)}
}

// openError turns Badger's open errors into the journal's.
func openError(dir string, err error) error {
	msg := err.Error()
	if strings.Contains(msg, "Cannot acquire directory lock") || errors.Is(err, syscall.EWOULDBLOCK) {
		who := "another agenthelm process"
		detail := "only one process can open a journal: stop it, or reach it through its admin API"
		if pid := lockPID(dir); pid != 0 {
			if pid == os.Getpid() {
				who = "this process"
				detail = fmt.Sprintf("pid %d: the journal is already open", pid)
			} else {
				detail = fmt.Sprintf("pid %d; %s", pid, detail)
			}
		}
		return &journalError{kind: ErrLocked, msg: fmt.Sprintf("journal: directory %s is in use by %s (%s)", dir, who, detail)}
	}
	for _, s := range []string{"bad magic", "corrupt", "checksum", "Invalid datakey", "Encryption key mismatch", "greater than file size"} {
		if strings.Contains(msg, s) {
			return &journalError{kind: ErrCorrupt, msg: fmt.Sprintf(
				"journal: directory %s is corrupt or not an agenthelm journal; nothing in it was deleted (move it aside, or restore it from a backup)", dir), cause: err}
		}
	}
	return fmt.Errorf("open journal %s: %w", dir, err)
}

// lockPID reads the pid Badger writes into its LOCK file, or 0.
func lockPID(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "LOCK"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return pid
}

// checkFormat reads or writes the format record. A Badger database that has
// keys but no format record is not a journal.
func (j *Journal) checkFormat() error {
	var raw []byte
	err := j.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(keyFormat)
		if err != nil {
			return err
		}
		raw, err = item.ValueCopy(nil)
		return err
	})
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		empty := true
		_ = j.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{})
			defer it.Close()
			it.Rewind()
			empty = !it.Valid()
			return nil
		})
		if !empty {
			return &journalError{kind: ErrNotJournal, msg: fmt.Sprintf(
				"journal: directory %s holds a Badger database that is not an agenthelm journal (no format record); refusing to use it, nothing was changed", j.dir)}
		}
		val, _ := json.Marshal(formatRecord{Format: formatVersion})
		if err := j.db.Update(func(txn *badger.Txn) error { return txn.Set(keyFormat, val) }); err != nil {
			return fmt.Errorf("open journal %s: write format record: %w", j.dir, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("open journal %s: read format record: %w", j.dir, err)
	}
	var f formatRecord
	if err := json.Unmarshal(raw, &f); err != nil || f.Format <= 0 {
		return &journalError{kind: ErrCorrupt, msg: fmt.Sprintf("journal: directory %s has an unreadable format record %q", j.dir, raw)}
	}
	if f.Format > formatVersion {
		return &journalError{kind: ErrFormat, msg: fmt.Sprintf(
			"journal: directory %s holds a journal in format %d, written by a newer agenthelm; this build reads formats up to %d: upgrade agenthelm to open it",
			j.dir, f.Format, formatVersion)}
	}
	// Older formats are upgraded here, one version at a time, once there
	// are any.
	return nil
}

// Healthy reports whether Appends can currently succeed: nil, ErrClosed,
// the sticky error of a failed write (matches ErrFailed), or the last
// free-space check's error (matches ErrDiskFull) until space is freed.
func (j *Journal) Healthy() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	switch {
	case j.closed:
		return ErrClosed
	case j.failed != nil:
		return j.failed
	}
	if p := j.space.Load(); p != nil {
		return *p
	}
	return nil
}

// fail records a write failure. From then on every Append fails with the
// returned error: the journal cannot know what reached the disk, and
// pretending otherwise would acknowledge records that are not durable.
func (j *Journal) fail(cause error) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.failed == nil {
		j.failed = &journalError{kind: ErrFailed, msg: "journal: a write failed; appends are refused until the journal is reopened", cause: cause}
		j.log.Error("journal write failed", "dir", j.dir, "err", cause)
	}
	return j.failed
}

func (j *Journal) failure() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.failed
}

// Close stops accepting Appends, lets the committer finish the ones already
// queued, stops the maintenance goroutine, runs one value-log GC pass and
// closes Badger. If ctx ends first, Appends still queued fail with
// ErrClosed (the one being committed always finishes). Close is
// idempotent: later calls return the first call's result.
func (j *Journal) Close(ctx context.Context) error {
	j.closeOnce.Do(func() { j.closeErr = j.close(ctx) })
	return j.closeErr
}

func (j *Journal) close(ctx context.Context) error {
	j.maintCancel()
	<-j.maintDone

	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
	j.signal()

	var abandoned int
	select {
	case <-j.committerDone:
	case <-ctx.Done():
		abandoned = j.abortQueued()
		<-j.committerDone
	}

	j.dbMu.Lock()
	defer j.dbMu.Unlock()
	j.dbClosed = true
	if ctx.Err() == nil && j.failure() == nil {
		if err := j.db.RunValueLogGC(gcDiscardRatio); err != nil &&
			!errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
			j.log.Warn("journal value log gc at close", "err", err)
		}
	}
	if err := j.db.Close(); err != nil {
		return fmt.Errorf("close journal: %w", err)
	}
	if abandoned > 0 {
		return fmt.Errorf("close journal: %d queued appends failed with ErrClosed: %w", abandoned, ctx.Err())
	}
	return nil
}

// abortQueued fails every queued request with ErrClosed and returns how
// many were Appends.
func (j *Journal) abortQueued() int {
	j.mu.Lock()
	q := j.queue
	j.queue = nil
	j.mu.Unlock()
	appends := 0
	for _, r := range q {
		if !r.sweep {
			appends++
		}
		r.finish(ErrClosed)
	}
	return appends
}

// checkSpace fails when writing need more bytes would leave less than the
// reserve free.
func (j *Journal) checkSpace(need int64) error {
	if j.minFree < 0 {
		return nil
	}
	free, err := freeBytes(j.dir)
	if err != nil {
		return nil // unknown: do not block writes on it
	}
	if free >= uint64(j.minFree+need) {
		j.space.Store(nil)
		return nil
	}
	var e error = &journalError{kind: ErrDiskFull, msg: fmt.Sprintf(
		"journal: disk full: %s free on the filesystem of %s, below the %s reserve the journal keeps (a write into a full disk would crash agenthelm); free some space",
		mib(int64(free)), j.dir, mib(j.minFree+need)), cause: syscall.ENOSPC}
	j.space.Store(&e)
	return e
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// badgerLogger passes Badger's warnings and errors to slog and drops its
// info and debug lines.
type badgerLogger struct {
	log *slog.Logger
	j   *Journal
}

func (l *badgerLogger) Errorf(format string, args ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, args...))
	l.log.Error("badger", "detail", msg)
	// Badger logs, and does not return, a failed fsync of the value log.
	// The committer checks failure() after each commit, so the batch that
	// hit it is not acknowledged.
	if strings.Contains(msg, "curlf sync") {
		l.j.fail(errors.New(msg))
	}
}

func (l *badgerLogger) Warningf(format string, args ...any) {
	l.log.Warn("badger", "detail", strings.TrimSpace(fmt.Sprintf(format, args...)))
}

func (l *badgerLogger) Infof(string, ...any)  {}
func (l *badgerLogger) Debugf(string, ...any) {}
