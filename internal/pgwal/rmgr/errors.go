package rmgr

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error Decode returns is a *DecodeError wrapping one
// of them; check with errors.Is.
var (
	// ErrTruncated means the main data ends before a field or an array that
	// the record's own header or counts declare.
	ErrTruncated = errors.New("rmgr: main data truncated")
	// ErrCorrupt means a field holds a value PostgreSQL 15 never writes (a
	// negative count, a bad magic number, a fork number out of range, a string
	// without its terminating NUL).
	ErrCorrupt = errors.New("rmgr: main data corrupt")
)

// DecodeError says which record failed to decode and why. Its message reads
// like "rmgr: Transaction COMMIT: main data has 12 bytes, subxacts count 40
// needs 160 at offset 16".
type DecodeError struct {
	Rmgr   ID
	Record string // record type name as pg_waldump identifies it
	Detail string
	Err    error // ErrTruncated or ErrCorrupt
}

// Error implements error.
func (e *DecodeError) Error() string {
	return fmt.Sprintf("rmgr: %s %s: %s", e.Rmgr, e.Record, e.Detail)
}

// Unwrap returns the sentinel (ErrTruncated or ErrCorrupt).
func (e *DecodeError) Unwrap() error { return e.Err }
