package server

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stratadb/strata/internal/auth"
	pb "github.com/stratadb/strata/proto/gen/strata/pageserver/v1"
	"github.com/stratadb/strata/services/pageserver/basebackup"
	"github.com/stratadb/strata/services/pageserver/pgdatadir"
	"github.com/stratadb/strata/services/pageserver/tenant"
	"github.com/stratadb/strata/services/pageserver/tenantmgr"
	"github.com/stratadb/strata/services/pageserver/timeline"
)

// errInvalidArgument marks request errors found by the adapters.
var errInvalidArgument = errors.New("invalid argument")

// code classifies err. Domain errors keep their message (they state ids
// and LSNs); anything unclassified is Internal and its text is logged, not
// returned.
func code(err error) codes.Code {
	switch {
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, auth.ErrUnauthenticated):
		return codes.Unauthenticated
	case errors.Is(err, auth.ErrPermissionDenied):
		return codes.PermissionDenied
	case errors.Is(err, errInvalidArgument), errors.Is(err, tenantmgr.ErrInvalid), errors.Is(err, tenant.ErrInvalid):
		return codes.InvalidArgument
	case errors.Is(err, tenantmgr.ErrNotFound), errors.Is(err, tenant.ErrNotFound),
		errors.Is(err, timeline.ErrNotFound), errors.Is(err, pgdatadir.ErrRelNotFound), errors.Is(err, pgdatadir.ErrDbNotFound):
		return codes.NotFound
	case errors.Is(err, tenant.ErrAlreadyExists):
		return codes.AlreadyExists
	case errors.Is(err, tenant.ErrHasChildren):
		return codes.FailedPrecondition
	case errors.Is(err, timeline.ErrWaitLSNTimeout):
		return codes.DeadlineExceeded
	case errors.Is(err, timeline.ErrLSNOutOfRange):
		return codes.OutOfRange
	case errors.Is(err, tenantmgr.ErrIngestReplaced):
		return codes.Aborted
	case errors.Is(err, tenantmgr.ErrClosed), errors.Is(err, timeline.ErrClosed):
		return codes.Unavailable
	case errors.Is(err, tenantmgr.ErrBroken), errors.Is(err, tenant.ErrCorrupt), errors.Is(err, timeline.ErrBroken):
		return codes.FailedPrecondition
	case errors.Is(err, tenantmgr.ErrUnsupported), errors.Is(err, basebackup.ErrUnsupported):
		return codes.Unimplemented
	}
	return codes.Unknown
}

// toStatus maps err to a gRPC status error. Errors that already are status
// errors (from auth) pass unchanged.
func toStatus(log *slog.Logger, what string, err error) error {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok {
		return s.Err()
	}
	c := code(err)
	if c == codes.Unknown {
		log.Error("request failed", "rpc", what, "err", err)
		return status.Errorf(codes.Internal, "%s: internal error (see the pageserver log)", what)
	}
	return status.Error(c, err.Error())
}

// pageStatus maps err to a GetPages status code and reason.
func pageStatus(log *slog.Logger, err error) (pb.GetPagesStatusCode, string) {
	if s, ok := status.FromError(err); ok {
		switch s.Code() {
		case codes.PermissionDenied, codes.Unauthenticated:
			return pb.GetPagesStatusCode_GET_PAGES_STATUS_CODE_PERMISSION_DENIED, s.Message()
		case codes.InvalidArgument:
			return pb.GetPagesStatusCode_GET_PAGES_STATUS_CODE_INVALID_REQUEST, s.Message()
		}
	}
	switch code(err) {
	case codes.PermissionDenied, codes.Unauthenticated:
		return pb.GetPagesStatusCode_GET_PAGES_STATUS_CODE_PERMISSION_DENIED, err.Error()
	case codes.NotFound:
		return pb.GetPagesStatusCode_GET_PAGES_STATUS_CODE_NOT_FOUND, err.Error()
	case codes.InvalidArgument, codes.OutOfRange:
		return pb.GetPagesStatusCode_GET_PAGES_STATUS_CODE_INVALID_REQUEST, err.Error()
	case codes.DeadlineExceeded:
		if errors.Is(err, timeline.ErrWaitLSNTimeout) {
			return pb.GetPagesStatusCode_GET_PAGES_STATUS_CODE_LSN_TIMEOUT, err.Error()
		}
	case codes.Unavailable:
		return pb.GetPagesStatusCode_GET_PAGES_STATUS_CODE_SLOW_DOWN, err.Error()
	case codes.FailedPrecondition:
		return pb.GetPagesStatusCode_GET_PAGES_STATUS_CODE_INTERNAL_ERROR, err.Error()
	}
	log.Error("GetPages request failed", "err", err)
	return pb.GetPagesStatusCode_GET_PAGES_STATUS_CODE_INTERNAL_ERROR, "internal error (see the pageserver log)"
}
