package server

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stratadb/strata/services/safekeeper-bridge/timelines"
)

// statusError maps an error of the bridge to a gRPC status error with
// errors.Is, so wrapped errors map too; anything unrecognised is Internal.
func statusError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err // already a status (authorisation)
	}
	code := codes.Internal
	switch {
	case errors.Is(err, timelines.ErrInvalidArgument):
		code = codes.InvalidArgument
	case errors.Is(err, timelines.ErrAlreadyAttached):
		code = codes.AlreadyExists
	case errors.Is(err, timelines.ErrNotAttached):
		code = codes.NotFound
	case errors.Is(err, timelines.ErrConfigured):
		code = codes.FailedPrecondition
	case errors.Is(err, timelines.ErrClosed):
		code = codes.Unavailable
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	return status.Error(code, err.Error())
}
