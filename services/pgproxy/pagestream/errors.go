package pagestream

import "errors"

// ErrMalformed is wrapped by every decoding error: a truncated or overlong
// message, an unknown tag, or a field out of range.
var ErrMalformed = errors.New("pagestream: malformed message")

// ErrUnsupportedVersion is returned for a protocol version other than 2 or 3.
var ErrUnsupportedVersion = errors.New("pagestream: unsupported protocol version")

// ErrServer is wrapped by the error a Client returns for a pagestream Error
// response (the server refused or failed that one request).
var ErrServer = errors.New("pagestream: server error")
