package spool

import "errors"

var (
	// ErrNotContiguous is returned by Append when the data does not start
	// where the spool ends.
	ErrNotContiguous = errors.New("spool: WAL is not contiguous")
	// ErrTrimmed is returned by NewReader for an LSN below the oldest byte
	// the spool still holds.
	ErrTrimmed = errors.New("spool: WAL was already trimmed")
	// ErrCorrupt marks a damaged segment that cannot be a torn tail.
	ErrCorrupt = errors.New("spool: corrupt segment")
	// ErrEmpty is returned by NewReader while the spool holds no WAL and
	// has no start position.
	ErrEmpty = errors.New("spool: empty")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("spool: closed")
	// ErrIdentity is returned by SetIdentity when the spool already holds
	// WAL of another system or timeline.
	ErrIdentity = errors.New("spool: WAL of another system or timeline")
)
