package session

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stratadb/strata/internal/auth"
	"github.com/stratadb/strata/services/pgproxy/wire"
)

func TestUpstreamError(t *testing.T) {
	for _, tc := range []struct {
		code  codes.Code
		state string
		close bool
		is    error
	}{
		{codes.Unauthenticated, wire.CodeInvalidPassword, false, auth.ErrUnauthenticated},
		{codes.PermissionDenied, wire.CodeInvalidAuthorization, false, auth.ErrPermissionDenied},
		{codes.InvalidArgument, "22023", false, nil},
		{codes.NotFound, "42704", false, nil},
		{codes.AlreadyExists, "42710", false, nil},
		{codes.Unavailable, wire.CodeConnectionFailure, true, nil},
		{codes.DeadlineExceeded, "57014", false, nil},
		{codes.Internal, wire.CodeInternal, false, nil},
	} {
		t.Run(tc.code.String(), func(t *testing.T) {
			err := upstreamError("op", status.Error(tc.code, "why"))
			var we *wire.Error
			require.True(t, errors.As(err, &we))
			require.Equal(t, tc.state, we.Code)
			require.Equal(t, tc.close, we.Close)
			require.Contains(t, we.Message, "op: pageserver: why")
			if tc.is != nil {
				require.ErrorIs(t, err, tc.is)
			}
		})
	}
	we := wire.AsError(upstreamError("op", errors.New("plain")))
	require.Equal(t, wire.CodeInternal, we.Code)
}
