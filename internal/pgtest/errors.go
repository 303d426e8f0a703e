package pgtest

import "errors"

var (
	// ErrNoPostgres is returned (wrapped) when the PostgreSQL binaries cannot be found.
	ErrNoPostgres = errors.New("pgtest: PostgreSQL binaries not found")
	// ErrWrongVersion is returned (wrapped) when the binaries are not PostgreSQL 15.
	ErrWrongVersion = errors.New("pgtest: PostgreSQL binaries are not version 15")
	// ErrNoUser is returned (wrapped) when the unprivileged OS user cannot be found or created.
	ErrNoUser = errors.New("pgtest: cannot find or create the PostgreSQL OS user")
	// ErrStart is returned (wrapped) when the server does not start.
	ErrStart = errors.New("pgtest: PostgreSQL did not start")
	// ErrStop is returned (wrapped) when the server does not stop.
	ErrStop = errors.New("pgtest: PostgreSQL did not stop")
	// ErrBadOption is returned (wrapped) for an Options value that cannot be used.
	ErrBadOption = errors.New("pgtest: invalid option")
	// ErrCommand is returned (wrapped) when a PostgreSQL client program fails.
	ErrCommand = errors.New("pgtest: command failed")
)

// errPortInUse marks a start that failed because the port was taken; Start
// then tries another port.
var errPortInUse = errors.New("pgtest: port already in use")
