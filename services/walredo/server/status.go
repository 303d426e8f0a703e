package server

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stratadb/strata/services/walredo/redo"
)

// ErrorDomain is the google.rpc.ErrorInfo domain of WalRedoService errors.
const ErrorDomain = "walredo.strata"

// ErrorInfo reasons, one per redo sentinel.
const (
	ReasonInvalidRequest = "INVALID_REQUEST"
	ReasonRecordFailed   = "RECORD_FAILED"
	ReasonChildCrashed   = "CHILD_CRASHED"
	ReasonTimeout        = "TIMEOUT"
	ReasonClosed         = "CLOSED"
)

// ErrorInfo metadata keys.
const (
	// MetaRecordLSN is the start LSN of the failing record, "X/Y".
	MetaRecordLSN = "record_lsn"
	// MetaDetail is PostgreSQL's message (RecordError.Msg).
	MetaDetail = "detail"
)

// statusError maps an error of the backend to a gRPC status error. It uses
// errors.Is, so wrapped errors map too. Context errors pass through as
// Canceled and DeadlineExceeded (the caller gave up; no ErrorInfo);
// anything unrecognised is Internal.
func statusError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err // already a status (authorisation)
	}
	var code codes.Code
	var reason string
	switch {
	case errors.Is(err, redo.ErrRecordFailed):
		code, reason = codes.InvalidArgument, ReasonRecordFailed
	case errors.Is(err, redo.ErrInvalidRequest):
		code, reason = codes.InvalidArgument, ReasonInvalidRequest
	case errors.Is(err, redo.ErrChildCrashed):
		code, reason = codes.Internal, ReasonChildCrashed
	case errors.Is(err, redo.ErrTimeout):
		code, reason = codes.DeadlineExceeded, ReasonTimeout
	case errors.Is(err, redo.ErrClosed):
		code, reason = codes.Unavailable, ReasonClosed
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	default:
		return status.Error(codes.Internal, err.Error())
	}
	st := status.New(code, err.Error())
	info := &errdetails.ErrorInfo{Domain: ErrorDomain, Reason: reason}
	var recErr *redo.RecordError
	if errors.As(err, &recErr) {
		info.Metadata = map[string]string{MetaDetail: recErr.Msg}
		if recErr.LSN.IsValid() {
			info.Metadata[MetaRecordLSN] = recErr.LSN.String()
		}
	}
	if withInfo, derr := st.WithDetails(info); derr == nil {
		st = withInfo
	}
	return st.Err()
}
