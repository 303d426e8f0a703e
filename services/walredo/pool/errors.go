package pool

import "errors"

// ErrConfig: the configuration is invalid.
var ErrConfig = errors.New("pool: invalid configuration")
