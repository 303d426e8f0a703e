package timelines

import "errors"

var (
	// ErrInvalidArgument marks a request the bridge cannot act on (bad id,
	// empty or unparsable connection string, bad slot name).
	ErrInvalidArgument = errors.New("timelines: invalid argument")
	// ErrAlreadyAttached marks an Attach of a timeline that is attached.
	ErrAlreadyAttached = errors.New("timelines: timeline is already attached")
	// ErrNotAttached marks a timeline that is not attached.
	ErrNotAttached = errors.New("timelines: timeline is not attached")
	// ErrConfigured marks a Detach of a timeline that comes from the
	// [[timeline]] tables of the config file (remove it there).
	ErrConfigured = errors.New("timelines: timeline is attached by the config file")
	// ErrClosed marks a call after the manager stopped.
	ErrClosed = errors.New("timelines: bridge is shutting down")
	// ErrUnsupported marks a primary the import cannot handle yet (user
	// tablespaces).
	ErrUnsupported = errors.New("timelines: unsupported")
	// ErrState marks an unreadable attachments file.
	ErrState = errors.New("timelines: bad state file")
	// ErrImport marks a base backup import that failed for good.
	ErrImport = errors.New("timelines: base backup import failed")
)
