package ids

import "errors"

// ErrInvalid is returned (wrapped) when text is not a valid id.
var ErrInvalid = errors.New("ids: invalid id")
