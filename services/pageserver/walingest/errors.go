package walingest

import "errors"

var (
	// ErrNotFound is what a Store returns (wrapped) from Latest for a key
	// that has no value yet.
	ErrNotFound = errors.New("walingest: key not found")
	// ErrCorrupt marks a stored metadata value (directory, size, checkpoint)
	// that does not decode, or a record whose body cannot be decoded.
	ErrCorrupt = errors.New("walingest: corrupt value")
	// ErrNoPageReader is returned for CREATE DATABASE ... FILE_COPY when the
	// Ingester has no PageReader to copy the source database's pages.
	ErrNoPageReader = errors.New("walingest: no page reader for CREATE DATABASE FILE_COPY")
	// ErrMissingBase means a record needs state from before the first
	// ingested record that the store does not have (the source database of
	// FILE_COPY).
	ErrMissingBase = errors.New("walingest: store lacks state the record depends on")
)
