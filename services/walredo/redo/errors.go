package redo

import (
	"errors"
	"fmt"

	"github.com/stratadb/strata/internal/lsn"
)

// Errors returned by Redoer implementations, checked with errors.Is.
var (
	// ErrInvalidRequest: the request is malformed (bad page size, invalid
	// fork, empty record); it was not sent to a child.
	ErrInvalidRequest = errors.New("redo: invalid request")
	// ErrRecordFailed: PostgreSQL refused a record with an ERROR (bad CRC,
	// undecodable record, a record that cannot be applied to one page). The
	// child survived. The error is a *RecordError naming the record.
	ErrRecordFailed = errors.New("redo: record could not be applied")
	// ErrChildCrashed: the child exited while serving the request (PANIC,
	// signal). After the retry on a fresh child also crashed, Apply returns a
	// *RecordError wrapping this when the failing record is known.
	ErrChildCrashed = errors.New("redo: walredo child crashed")
	// ErrTimeout: the request exceeded its deadline; the child was killed.
	ErrTimeout = errors.New("redo: request timed out")
	// ErrClosed: the Redoer was closed.
	ErrClosed = errors.New("redo: closed")
)

// RecordError names the record at which a request failed.
type RecordError struct {
	// LSN is the start LSN of the failing record; lsn.Invalid when the
	// failure is not tied to one record.
	LSN lsn.LSN
	// Msg is PostgreSQL's message (or the child's last words for a crash).
	Msg string
	// Kind is ErrRecordFailed or ErrChildCrashed.
	Kind error
}

func (e *RecordError) Error() string {
	if e.LSN.IsValid() {
		return fmt.Sprintf("%v: record at %s: %s", e.Kind, e.LSN, e.Msg)
	}
	return fmt.Sprintf("%v: %s", e.Kind, e.Msg)
}

// Unwrap lets errors.Is match the kind.
func (e *RecordError) Unwrap() error { return e.Kind }
