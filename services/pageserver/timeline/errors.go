package timeline

import "errors"

var (
	// ErrNotFound: the key has no value at the LSN (it never existed there).
	ErrNotFound = errors.New("timeline: key not found")
	// ErrWaitLSNTimeout: WAL up to the requested LSN did not arrive in time.
	ErrWaitLSNTimeout = errors.New("timeline: timed out waiting for WAL")
	// ErrLSNOutOfRange: the LSN is below what the timeline can serve (before
	// its start or garbage-collected) or invalid.
	ErrLSNOutOfRange = errors.New("timeline: LSN out of range")
	// ErrReconstruct: the stored history of a key cannot be turned into a
	// value (no base image, a redo failure); it wraps the cause.
	ErrReconstruct = errors.New("timeline: cannot reconstruct value")
	// ErrBroken: an earlier ingest or flush failure stopped the timeline.
	ErrBroken = errors.New("timeline: broken")
	// ErrClosed: the timeline was shut down.
	ErrClosed = errors.New("timeline: closed")
)
