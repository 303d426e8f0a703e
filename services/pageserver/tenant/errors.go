package tenant

import "errors"

var (
	// ErrNotFound is returned (wrapped) for a tenant or timeline id that the
	// repository does not hold (or no longer holds: deleted).
	ErrNotFound = errors.New("tenant: not found")
	// ErrAlreadyExists is returned (wrapped) when creating a tenant or
	// timeline whose id is already taken, including by a broken one.
	ErrAlreadyExists = errors.New("tenant: already exists")
	// ErrHasChildren is returned (wrapped) when deleting a timeline that
	// other timelines branch from.
	ErrHasChildren = errors.New("tenant: timeline has child branches")
	// ErrCorrupt is returned (wrapped) when asking for a tenant or timeline
	// that was found broken on disk at Open (unreadable metadata, missing
	// directories, missing ancestor). The error also wraps the cause, e.g.
	// metadata.ErrCorrupt naming the file.
	ErrCorrupt = errors.New("tenant: broken on disk")
	// ErrInvalid is returned (wrapped) for a request that can never succeed
	// as asked: a zero id, invalid metadata, a branch point below the
	// ancestor's GC cutoff, an attempt to change a timeline's ancestry.
	ErrInvalid = errors.New("tenant: invalid request")
)
