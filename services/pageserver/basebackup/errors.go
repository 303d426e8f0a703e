package basebackup

import "errors"

var (
	// ErrCorrupt marks stored state that cannot be what PostgreSQL wrote: a
	// control file with a bad CRC or foreign constants, a relmapper file of
	// the wrong size, a twophase state whose length disagrees with its header.
	ErrCorrupt = errors.New("basebackup: corrupt stored state")
	// ErrUnsupported marks a valid cluster this package cannot back up yet
	// (user tablespaces, a non-15 control file version, 64-bit xids).
	ErrUnsupported = errors.New("basebackup: unsupported")
	// ErrInvalidCheckpoint marks a checkpoint that PostgreSQL would refuse
	// to start from (nextXid not normal, timeline 0).
	ErrInvalidCheckpoint = errors.New("basebackup: invalid checkpoint")
	// ErrSource wraps a failure of the Source while reading the timeline.
	ErrSource = errors.New("basebackup: source")
)
