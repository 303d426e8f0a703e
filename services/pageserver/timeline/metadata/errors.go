package metadata

import "errors"

var (
	// ErrCorrupt is returned (wrapped) when bytes are not a valid metadata
	// file: wrong magic, version, length or checksum, or impossible values.
	ErrCorrupt = errors.New("metadata: corrupt metadata file")
	// ErrInvalid is returned (wrapped) by Encode and Write for metadata that
	// could not be decoded back (for example an ancestor LSN without an
	// ancestor, or PostgreSQL version 0).
	ErrInvalid = errors.New("metadata: invalid metadata")
)
