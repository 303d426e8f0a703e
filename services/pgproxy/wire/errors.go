package wire

import (
	"errors"
	"fmt"

	"github.com/stratadb/strata/internal/auth"
)

// SQLSTATE codes pgproxy uses.
const (
	CodeInternal             = "XX000"
	CodeInvalidPassword      = "28P01"
	CodeInvalidAuthorization = "28000"
	CodeSyntaxError          = "42601"
	CodeConnectionFailure    = "08006"
	CodeProtocolViolation    = "08P01"
	CodeFeatureNotSupported  = "0A000"
	CodeTooManyConnections   = "53300"
	CodeAdminShutdown        = "57P01"
	CodeProgramLimitExceeded = "54000"
)

// ErrServerClosed is returned by Serve when called on a server that already
// served.
var ErrServerClosed = errors.New("wire: server already served")

// ErrShutdown is wrapped by errors caused by the server shutting down.
var ErrShutdown = errors.New("wire: server is shutting down")

// Error is an error with the SQLSTATE and wording the client gets in its
// ErrorResponse. Close asks the server to close the connection after sending
// it (auth failures, 08006).
type Error struct {
	Code    string
	Message string
	// Hint says what to do, when that is not obvious from Message.
	Hint  string
	Close bool
	// Err is the cause, kept for errors.Is and logs.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s (SQLSTATE %s): %v", e.Message, e.Code, e.Err)
	}
	return fmt.Sprintf("%s (SQLSTATE %s)", e.Message, e.Code)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsError maps err to the *Error the client sees: an *Error in the chain is
// used as is; auth.ErrUnauthenticated becomes 28P01 and
// auth.ErrPermissionDenied 28000 (both with the auth message, which never
// contains the token); ErrShutdown becomes 57P01; anything else is XX000.
func AsError(err error) *Error {
	var we *Error
	switch {
	case errors.As(err, &we):
		return we
	case errors.Is(err, auth.ErrPermissionDenied):
		return &Error{Code: CodeInvalidAuthorization, Message: err.Error(), Err: err,
			Hint: "use a token whose scope allows this: a tenant token for its own tenant, or a pageserverapi token"}
	case errors.Is(err, auth.ErrUnauthenticated):
		return &Error{Code: CodeInvalidPassword, Message: err.Error(), Err: err, Close: true,
			Hint: "connect with a valid JWT as the password (PGPASSWORD)"}
	case errors.Is(err, ErrShutdown):
		return &Error{Code: CodeAdminShutdown, Message: "terminating connection: pgproxy is shutting down", Err: err, Close: true,
			Hint: "reconnect; another pgproxy instance or this one after restart will serve you"}
	default:
		return &Error{Code: CodeInternal, Message: err.Error(), Err: err}
	}
}
