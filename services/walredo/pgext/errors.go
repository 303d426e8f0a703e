package pgext

import "errors"

// ErrBuild is returned when the extension cannot be built.
var ErrBuild = errors.New("pgext: build failed")
