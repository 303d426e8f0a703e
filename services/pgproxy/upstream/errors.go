package upstream

import "errors"

// ErrDial is wrapped when the connection to the pageserver cannot be set up.
var ErrDial = errors.New("upstream: cannot set up pageserver connection")
