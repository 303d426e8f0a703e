package pgdatadir

import "errors"

// ErrRelNotFound is returned (wrapped) when a relation does not exist at
// the LSN asked for.
var ErrRelNotFound = errors.New("pgdatadir: relation not found")

// ErrDbNotFound is returned (wrapped) when a database does not exist at the
// LSN asked for.
var ErrDbNotFound = errors.New("pgdatadir: database not found")
