package process

import "errors"

// Errors of this package, checked with errors.Is. Request failures use the
// errors of services/walredo/redo (ErrRecordFailed, ErrChildCrashed,
// ErrTimeout) so the pool can pass them through.
var (
	// ErrTemplate: the template data dir could not be prepared.
	ErrTemplate = errors.New("process: template preparation failed")
	// ErrStart: the child did not start or did not complete its handshake.
	ErrStart = errors.New("process: walredo child failed to start")
	// ErrStaleExtension: the child's extension reports another protocol
	// version or build id than this binary expects; rebuild it (make build).
	ErrStaleExtension = errors.New("process: strata_walredo extension is stale")
	// ErrNoUser: running as root and no unprivileged user is available.
	ErrNoUser = errors.New("process: no unprivileged user to run postgres")
	// ErrChildGone: the child was closed or killed; start a new one.
	ErrChildGone = errors.New("process: walredo child is gone")
	// ErrProtocol: the child answered something the protocol does not allow.
	ErrProtocol = errors.New("process: protocol violation")
)
