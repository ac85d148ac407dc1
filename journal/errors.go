package journal

import "errors"

// Errors returned by the journal. Match them with errors.Is: most are
// returned wrapped with the detail of what went wrong.
var (
	// ErrClosed: the journal has been closed, or was closing while an Append
	// waited and the Append was not written.
	ErrClosed = errors.New("journal: closed")

	// ErrNotFound: no saga with that id (never written, or removed by
	// retention).
	ErrNotFound = errors.New("journal: saga not found")

	// ErrInvalid: a Batch the journal will not write (empty saga id, an
	// event without a kind, a body that is not JSON, ...). Nothing was
	// written. It is a caller bug, not a journal failure.
	ErrInvalid = errors.New("journal: invalid batch")

	// ErrTooLarge: a single Batch does not fit in one Badger transaction or
	// an event is above MaxRecordSize. Nothing was written; other callers
	// are unaffected.
	ErrTooLarge = errors.New("journal: batch too large")

	// ErrInDoubt: Append's context ended while its batch was queued or being
	// committed. The batch may or may not be durable; re-read the saga to
	// find out. Returned joined with the context's error.
	ErrInDoubt = errors.New("journal: append in doubt")

	// ErrLocked: another process (or another Journal in this process) has
	// the directory open.
	ErrLocked = errors.New("journal: directory in use")

	// ErrNotJournal: the directory holds something other than an agenthelm
	// journal. It is left untouched.
	ErrNotJournal = errors.New("journal: not an agenthelm journal")

	// ErrFormat: the journal or one of its records was written by a newer
	// agenthelm with a format this build cannot read.
	ErrFormat = errors.New("journal: unsupported format")

	// ErrCorrupt: a stored record could not be decoded.
	ErrCorrupt = errors.New("journal: corrupt record")

	// ErrFailed: a commit failed (an I/O error, or Badger reported a failed
	// fsync). Every Append of that commit got this error, nothing of it was
	// acknowledged, and every later Append fails fast with it until the
	// journal is closed and reopened. Healthy returns it.
	ErrFailed = errors.New("journal: write failed")

	// ErrDiskFull: the journal's filesystem has less free space than the
	// reserve the journal keeps. Also matches syscall.ENOSPC. Nothing of the
	// refused batch was written, and Appends succeed again once space is
	// freed.
	ErrDiskFull = errors.New("journal: disk full")
)

// journalError carries a complete message while matching a sentinel (kind)
// and, through Unwrap, the underlying cause.
type journalError struct {
	kind  error
	msg   string
	cause error
}

func (e *journalError) Error() string {
	if e.cause == nil {
		return e.msg
	}
	return e.msg + ": " + e.cause.Error()
}

func (e *journalError) Is(target error) bool { return target == e.kind }

func (e *journalError) Unwrap() error { return e.cause }
