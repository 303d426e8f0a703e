package tenantmgr

import "errors"

var (
	// ErrNotFound: no such tenant or timeline.
	ErrNotFound = errors.New("tenantmgr: not found")
	// ErrInvalid: a malformed request (bad id, bad LSN).
	ErrInvalid = errors.New("tenantmgr: invalid request")
	// ErrBroken: the tenant or timeline could not be loaded; the reason
	// is wrapped with it.
	ErrBroken = errors.New("tenantmgr: broken")
	// ErrIngestReplaced cancels an ingest session that a newer session for
	// the same timeline replaced.
	ErrIngestReplaced = errors.New("tenantmgr: ingest session replaced by a newer one")
	// ErrClosed: the manager is shutting down.
	ErrClosed = errors.New("tenantmgr: closed")
	// ErrUnsupported: the operation is not available in this build.
	ErrUnsupported = errors.New("tenantmgr: unsupported")
)
