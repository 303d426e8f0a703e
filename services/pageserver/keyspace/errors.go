package keyspace

import "errors"

// ErrInvalidKey is returned (wrapped) for bytes or text that are not a key,
// or a key asked for a meaning it does not have.
var ErrInvalidKey = errors.New("keyspace: invalid key")
